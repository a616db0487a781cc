using System.Diagnostics;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Scheduling;
using InferenceServer.Tensors;

namespace InferenceServer.Tests.Core.Scheduling;

/// <summary>
/// <see cref="RequestQueue"/> on its own: priority order, the capacity bound, abandonment by deadline and
/// cancellation, batch collection, and stopping. The queue and <see cref="PendingRequest"/> read the Stopwatch
/// directly (no TimeProvider), so deadlines are set already past rather than advanced on a manual clock; every wait
/// is on a task with a bound, never a sleep.
/// </summary>
public sealed class RequestQueueTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>No batching: every request is its own batch.</summary>
    private static readonly BatchPolicy OneByOne = new(0, null);

    /// <summary>A pending request with one FP32 input of shape [rows, width] (rows share a batch when widths match).</summary>
    private static PendingRequest Pending(string id, int level = 0, long rows = 1, long width = 4, long deadline = 0)
    {
        var request = new InferenceRequest("m") { Id = id };
        request.AddInput(new Tensor("x", DataType.Fp32, [rows, width], TensorBuffer.CopyOf(new byte[rows * width * 4])));
        return new PendingRequest(request, rows, level, deadline);
    }

    private static string Ids(IEnumerable<PendingRequest>? batch) => batch is null ? "<null>" : string.Join(",", batch.Select(p => p.Request.Id));

    [Fact]
    public void Higher_priority_levels_are_taken_first_and_each_level_in_arrival_order()
    {
        var queue = new RequestQueue(levels: 3, capacity: 10);
        foreach (var (id, level) in new[] { ("a", 2), ("b", 0), ("c", 1), ("d", 2), ("e", 0), ("f", 1) })
        {
            queue.Enqueue(Pending(id, level));
        }
        Assert.Equal(6, queue.Count);

        var order = new List<string>();
        while (queue.Count > 0)
        {
            var batch = queue.TakeBatch(OneByOne);
            Assert.NotNull(batch);
            order.Add(Assert.Single(batch).Request.Id);
        }
        Assert.Equal(["b", "e", "c", "f", "a", "d"], order);
    }

    [Fact]
    public void A_full_queue_rejects_at_once_as_resource_exhausted_and_accepts_again_once_one_leaves()
    {
        var queue = new RequestQueue(levels: 1, capacity: 2);
        queue.Enqueue(Pending("a"));
        queue.Enqueue(Pending("b"));

        var rejected = Pending("c");
        var e = Assert.Throws<InferenceException>(() => queue.Enqueue(rejected));
        Assert.Equal(InferenceErrorKind.ResourceExhausted, e.Kind);
        Assert.Equal("the model's queue is full (2 requests waiting); retry later", e.Message);
        Assert.Equal(TimeSpan.FromSeconds(1), e.RetryAfter);
        Assert.Equal(2, queue.Count);
        Assert.Null(rejected.Node);

        Assert.Equal("a", Ids(queue.TakeBatch(OneByOne)));
        queue.Enqueue(rejected);
        Assert.Equal(2, queue.Count);
        Assert.Equal("b", Ids(queue.TakeBatch(OneByOne)));
        Assert.Equal("c", Ids(queue.TakeBatch(OneByOne)));
    }

    [Fact]
    public void The_capacity_counts_every_level_together()
    {
        var queue = new RequestQueue(levels: 2, capacity: 2);
        queue.Enqueue(Pending("low", level: 1));
        queue.Enqueue(Pending("high", level: 0));
        Assert.Equal(InferenceErrorKind.ResourceExhausted, Assert.Throws<InferenceException>(() => queue.Enqueue(Pending("more", level: 0))).Kind);
    }

    [Fact]
    public async Task An_abandoned_request_leaves_the_queue_and_is_answered_with_its_error()
    {
        var queue = new RequestQueue(levels: 1, capacity: 4);
        var a = Pending("a");
        var b = Pending("b");
        queue.Enqueue(a);
        queue.Enqueue(b);

        var error = new InvalidOperationException("gone");
        queue.Abandon(a, error);
        Assert.Equal(1, queue.Count);
        Assert.False(a.IsQueued);
        Assert.Same(error, await Assert.ThrowsAsync<InvalidOperationException>(() => a.Completion.Task.WaitAsync(Bound)));

        // Abandoning twice changes nothing (the count must not drop again).
        queue.Abandon(a, new InvalidOperationException("again"));
        Assert.Equal(1, queue.Count);
        Assert.Equal("b", Ids(queue.TakeBatch(OneByOne)));
    }

    [Fact]
    public void A_request_already_taken_cannot_be_abandoned()
    {
        var queue = new RequestQueue(levels: 1, capacity: 4);
        var a = Pending("a");
        queue.Enqueue(a);
        Assert.Equal("a", Ids(queue.TakeBatch(OneByOne)));

        queue.Abandon(a, new InvalidOperationException("too late"));
        Assert.False(a.Completion.Task.IsCompleted);
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public void A_request_abandoned_behind_the_queues_back_is_skipped_when_taking()
    {
        // The request claims itself abandoned without unlinking (as a callback racing the taker would): the taker
        // must drop it, keep the count right and hand out the next one.
        var queue = new RequestQueue(levels: 1, capacity: 4);
        var a = Pending("a");
        queue.Enqueue(a);
        queue.Enqueue(Pending("b"));
        Assert.True(a.TryAbandon(new OperationCanceledException()));

        Assert.Equal("b", Ids(queue.TakeBatch(OneByOne)));
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public async Task A_deadline_that_has_passed_answers_the_queued_request_deadline_exceeded()
    {
        var queue = new RequestQueue(levels: 1, capacity: 4);
        var late = Pending("late", deadline: Stopwatch.GetTimestamp() - 1);
        var onTime = Pending("on-time", deadline: Stopwatch.GetTimestamp() + (long)Bound.TotalSeconds * 10 * Stopwatch.Frequency);
        queue.Enqueue(late);
        queue.Enqueue(onTime);
        late.Watch(CancellationToken.None, queue.Abandon);
        onTime.Watch(CancellationToken.None, queue.Abandon);

        var e = await Assert.ThrowsAsync<InferenceException>(() => late.Completion.Task.WaitAsync(Bound));
        Assert.Equal(InferenceErrorKind.DeadlineExceeded, e.Kind);
        Assert.Equal("the request's deadline passed while it was queued", e.Message);
        Assert.Equal(1, queue.Count);

        var batch = queue.TakeBatch(OneByOne);
        Assert.Same(onTime, Assert.Single(batch!));
        Assert.False(onTime.Completion.Task.IsCompleted);
    }

    [Fact]
    public async Task A_cancelled_client_is_answered_cancelled_and_leaves_the_queue()
    {
        var queue = new RequestQueue(levels: 1, capacity: 4);
        var pending = Pending("a");
        queue.Enqueue(pending);
        queue.Enqueue(Pending("b"));
        using var cancellation = new CancellationTokenSource();
        pending.Watch(cancellation.Token, queue.Abandon);
        Assert.True(pending.IsQueued);

        await cancellation.CancelAsync();
        var e = await Assert.ThrowsAsync<OperationCanceledException>(() => pending.Completion.Task.WaitAsync(Bound));
        Assert.Equal(cancellation.Token, e.CancellationToken);
        Assert.Equal(1, queue.Count);
        Assert.Equal("b", Ids(queue.TakeBatch(OneByOne)));
    }

    [Fact]
    public void A_taken_request_ignores_a_later_cancellation()
    {
        var queue = new RequestQueue(levels: 1, capacity: 4);
        var pending = Pending("a");
        queue.Enqueue(pending);
        using var cancellation = new CancellationTokenSource();
        pending.Watch(cancellation.Token, queue.Abandon);
        Assert.Equal("a", Ids(queue.TakeBatch(OneByOne)));

        cancellation.Cancel(); // the registration was removed when the request was taken: nothing runs
        Assert.False(pending.Completion.Task.IsCompleted);
    }

    [Fact]
    public async Task A_waiting_taker_wakes_when_a_request_arrives()
    {
        var queue = new RequestQueue(levels: 1, capacity: 4);
        var taker = Task.Factory.StartNew(() => queue.TakeBatch(OneByOne), TaskCreationOptions.LongRunning);
        var pending = Pending("a");
        queue.Enqueue(pending);
        Assert.Same(pending, Assert.Single((await taker.WaitAsync(Bound))!));
    }

    [Fact]
    public void Compatible_requests_form_one_batch_in_priority_then_arrival_order_and_others_wait()
    {
        var queue = new RequestQueue(levels: 2, capacity: 10);
        var policy = new BatchPolicy(8, new DynamicBatchingConfig(0, []));
        queue.Enqueue(Pending("low", level: 1, rows: 2));
        queue.Enqueue(Pending("wide", level: 0, width: 5)); // a different row shape: never in the same batch
        queue.Enqueue(Pending("high", level: 0, width: 5, rows: 3));
        queue.Enqueue(Pending("first4", level: 0));

        // The first queued request ("wide") leads; only requests whose rows match it join.
        Assert.Equal("wide,high", Ids(queue.TakeBatch(policy)));
        Assert.Equal("first4,low", Ids(queue.TakeBatch(policy)));
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public void A_batch_stops_at_max_batch_size_and_the_rest_follows_in_order()
    {
        var queue = new RequestQueue(levels: 1, capacity: 10);
        var policy = new BatchPolicy(4, new DynamicBatchingConfig(0, []));
        queue.Enqueue(Pending("a", rows: 2));
        queue.Enqueue(Pending("b", rows: 1));
        queue.Enqueue(Pending("c", rows: 2)); // 2 + 1 + 2 > 4
        queue.Enqueue(Pending("d", rows: 1));

        Assert.Equal("a,b", Ids(queue.TakeBatch(policy)));
        Assert.Equal("c,d", Ids(queue.TakeBatch(policy)));
    }

    [Fact]
    public async Task With_a_long_queue_delay_a_preferred_batch_size_dispatches_without_waiting_it_out()
    {
        // A delay of a day: the taker can only return because two rows form the preferred size.
        var queue = new RequestQueue(levels: 1, capacity: 10);
        var policy = new BatchPolicy(8, new DynamicBatchingConfig(86_400_000_000, [2]));
        queue.Enqueue(Pending("a"));
        var taker = Task.Factory.StartNew(() => queue.TakeBatch(policy), TaskCreationOptions.LongRunning);
        queue.Enqueue(Pending("b"));
        Assert.Equal("a,b", Ids(await taker.WaitAsync(Bound)));
    }

    [Theory]
    [InlineData(3L * 3600 * 1_000_000)] // 3 hours: microseconds * Stopwatch.Frequency overflowed a long
    [InlineData(long.MaxValue)]
    public void A_long_queue_delay_holds_a_lone_request_back(long delayMicroseconds)
    {
        var policy = new BatchPolicy(8, new DynamicBatchingConfig(delayMicroseconds, []));
        var pending = Pending("a");
        var now = Stopwatch.GetTimestamp();
        Assert.Equal(0, policy.Choose([pending], pending.Enqueued, out var waitUntil));
        Assert.True(waitUntil - now > 2 * 3600 * Stopwatch.Frequency, $"waits only until {waitUntil} (now {now})");
    }

    [Fact]
    public async Task A_taker_waits_out_a_queue_delay_longer_than_Monitor_Wait_accepts()
    {
        // 30 days is more than Monitor.Wait's int.MaxValue milliseconds: the taker must wait (in steps), not throw.
        var queue = new RequestQueue(levels: 1, capacity: 10);
        var policy = new BatchPolicy(8, new DynamicBatchingConfig(30L * 86_400_000_000, []));
        queue.Enqueue(Pending("a"));
        Thread? thread = null;
        var taker = Task.Factory.StartNew(
            () =>
            {
                Volatile.Write(ref thread, Thread.CurrentThread);
                return queue.TakeBatch(policy);
            },
            TaskCreationOptions.LongRunning);
        Assert.True(SpinWait.SpinUntil(
            () => taker.IsCompleted || (Volatile.Read(ref thread) is { } t && (t.ThreadState & System.Threading.ThreadState.WaitSleepJoin) != 0),
            Bound));
        Assert.False(taker.IsFaulted, taker.Exception?.ToString());

        // Filling the batch (8 rows) dispatches it at once.
        for (var i = 1; i < 8; i++)
        {
            queue.Enqueue(Pending("r" + i));
        }
        Assert.Equal(8, (await taker.WaitAsync(Bound))!.Count);
    }

    [Fact]
    public async Task Stop_wakes_waiting_takers_with_null_and_refuses_new_requests_as_unavailable()
    {
        var queue = new RequestQueue(levels: 1, capacity: 4);
        var takers = Enumerable.Range(0, 2).Select(_ => Task.Factory.StartNew(() => queue.TakeBatch(OneByOne), TaskCreationOptions.LongRunning)).ToArray();
        queue.Stop();
        foreach (var taker in takers)
        {
            Assert.Null(await taker.WaitAsync(Bound));
        }

        var e = Assert.Throws<InferenceException>(() => queue.Enqueue(Pending("late")));
        Assert.Equal(InferenceErrorKind.Unavailable, e.Kind);
        Assert.Equal("the model is being unloaded", e.Message);
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public void Stop_hands_out_no_more_batches_even_with_requests_still_queued()
    {
        // As the code defines it: stopping does not drain. The model version stops taking requests and waits for
        // its leases before the scheduler stops the queue, so nothing is meant to be queued by then; what is stays
        // unanswered by the queue (and counted).
        var queue = new RequestQueue(levels: 1, capacity: 4);
        var pending = Pending("a");
        queue.Enqueue(pending);
        queue.Stop();
        Assert.Null(queue.TakeBatch(OneByOne));
        Assert.Equal(1, queue.Count);
        Assert.False(pending.Completion.Task.IsCompleted);
    }
}
