using System.Text.Encodings.Web;
using System.Text.Json;

namespace InferenceServer.Http;

/// <summary>One set of JSON writer options for every REST response: readable messages (quotes and apostrophes unescaped).</summary>
internal static class JsonWriting
{
    public static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
