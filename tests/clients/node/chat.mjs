// The official OpenAI Node.js library pointed at the server: list models, a whole chat completion, the same
// streamed with usage, a streamed legacy completion, and an error. Prints one JSON object for the test to check.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY });
const model = process.env.MODEL;
const messages = [{ role: "user", content: process.env.PROMPT }];
const result = {};

result.models = (await client.models.list()).data.map(m => m.id);

const whole = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });
result.chat = { text: whole.choices[0].message.content, finish: whole.choices[0].finish_reason, usage: whole.usage };

const stream = await client.chat.completions.create({
  model, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true },
});
result.streamed = { text: "", pieces: 0, finish: null, usage: null };
for await (const chunk of stream) {
  if (chunk.choices.length > 0) {
    result.streamed.text += chunk.choices[0].delta.content ?? "";
    result.streamed.pieces++;
    result.streamed.finish = chunk.choices[0].finish_reason ?? result.streamed.finish;
  }
  if (chunk.usage) result.streamed.usage = chunk.usage;
}

const completion = await client.completions.create({ model, prompt: process.env.PROMPT, max_tokens: 12, temperature: 0, stream: true });
result.completion = "";
for await (const chunk of completion) result.completion += chunk.choices[0]?.text ?? "";

try {
  await client.chat.completions.create({ model: "no-such-model", messages });
  result.error = null;
} catch (e) {
  result.error = { status: e.status, type: e.error?.type ?? null };
}

console.log(JSON.stringify(result));
