using System.Buffers;

namespace InferenceServer.Http;

/// <summary>A request body read whole into a pooled array (Kestrel enforces the size limit while it is read).</summary>
internal sealed class RequestBody : IDisposable
{
    private byte[] _array;

    private RequestBody(byte[] array, int length)
    {
        _array = array;
        Length = length;
    }

    public int Length { get; }

    public ReadOnlyMemory<byte> Memory => _array.AsMemory(0, Length);

    public static async Task<RequestBody> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        // A declared length over the limit is refused before anything is rented for it (Kestrel would refuse it only
        // on the first read, after the rent); a declared length within it sizes the buffer once.
        var limit = request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
        if (request.ContentLength is long declared && declared > (limit ?? int.MaxValue))
        {
            throw new BadHttpRequestException($"the declared body of {declared} bytes exceeds the limit", StatusCodes.Status413PayloadTooLarge);
        }
        var capacity = request.ContentLength is long n and <= int.MaxValue ? (int)Math.Max(n, 1) : 64 * 1024;
        var array = ArrayPool<byte>.Shared.Rent(capacity);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == array.Length)
                {
                    var grown = ArrayPool<byte>.Shared.Rent(array.Length * 2);
                    array.AsSpan(0, length).CopyTo(grown);
                    ArrayPool<byte>.Shared.Return(array);
                    array = grown;
                }
                var read = await request.Body.ReadAsync(array.AsMemory(length), cancellationToken);
                if (read == 0)
                {
                    return new RequestBody(array, length);
                }
                length += read;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(array);
            throw;
        }
    }

    public void Dispose()
    {
        var array = Interlocked.Exchange(ref _array, []);
        if (array.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(array);
        }
    }
}
