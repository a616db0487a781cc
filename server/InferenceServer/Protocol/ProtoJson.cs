using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Google.Protobuf.Reflection;

namespace InferenceServer.Protocol;

/// <summary>
/// Writes a protobuf message as JSON the way Triton's REST API does: proto field names, every field including
/// defaults, enums by name, and 64-bit integers as JSON numbers (protobuf's own JSON mapping would quote them,
/// which clients such as perf_analyzer do not accept).
/// </summary>
internal static class ProtoJson
{
    public static void Write(Utf8JsonWriter writer, IMessage message) => Write(writer, message, extra: null);

    /// <summary>Writes <paramref name="message"/> as a JSON object, with <paramref name="extra"/>'s properties after its fields.</summary>
    public static void Write(Utf8JsonWriter writer, IMessage message, Action<Utf8JsonWriter>? extra)
    {
        writer.WriteStartObject();
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            var value = field.Accessor.GetValue(message);
            if (field.ContainingOneof is { } oneof && oneof.Accessor.GetCaseFieldDescriptor(message) != field)
            {
                continue;
            }
            if (field.FieldType == FieldType.Message && !field.IsRepeated && !field.IsMap && value is null)
            {
                continue;
            }
            writer.WritePropertyName(field.Name);
            WriteValue(writer, field, value);
        }
        extra?.Invoke(writer);
        writer.WriteEndObject();
    }

    private static void WriteValue(Utf8JsonWriter writer, FieldDescriptor field, object? value)
    {
        if (field.IsMap)
        {
            writer.WriteStartObject();
            var valueField = field.MessageType.FindFieldByNumber(2);
            foreach (System.Collections.DictionaryEntry entry in (System.Collections.IDictionary)value!)
            {
                writer.WritePropertyName(Convert.ToString(entry.Key, System.Globalization.CultureInfo.InvariantCulture)!);
                WriteSingle(writer, valueField, entry.Value);
            }
            writer.WriteEndObject();
        }
        else if (field.IsRepeated)
        {
            writer.WriteStartArray();
            foreach (var item in (System.Collections.IEnumerable)value!)
            {
                WriteSingle(writer, field, item);
            }
            writer.WriteEndArray();
        }
        else
        {
            WriteSingle(writer, field, value);
        }
    }

    private static void WriteSingle(Utf8JsonWriter writer, FieldDescriptor field, object? value)
    {
        switch (field.FieldType)
        {
            case FieldType.Message or FieldType.Group:
                if (value is IMessage m)
                {
                    Write(writer, m);
                }
                else
                {
                    writer.WriteNullValue();
                }
                break;
            case FieldType.Enum:
                var number = Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture);
                var enumValue = field.EnumType.FindValueByNumber(number);
                if (enumValue is null)
                {
                    writer.WriteNumberValue(number);
                }
                else
                {
                    writer.WriteStringValue(enumValue.Name);
                }
                break;
            case FieldType.Bool:
                writer.WriteBooleanValue((bool)value!);
                break;
            case FieldType.String:
                writer.WriteStringValue((string)value!);
                break;
            case FieldType.Bytes:
                writer.WriteBase64StringValue(((ByteString)value!).Span);
                break;
            case FieldType.Double:
                writer.WriteNumberValue((double)value!);
                break;
            case FieldType.Float:
                writer.WriteNumberValue((float)value!);
                break;
            case FieldType.UInt64 or FieldType.Fixed64:
                writer.WriteNumberValue((ulong)value!);
                break;
            case FieldType.UInt32 or FieldType.Fixed32:
                writer.WriteNumberValue((uint)value!);
                break;
            case FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64:
                writer.WriteNumberValue((long)value!);
                break;
            default:
                writer.WriteNumberValue(Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture));
                break;
        }
    }
}
