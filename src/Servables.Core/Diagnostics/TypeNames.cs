using System.Text;

namespace Servables;

/// <summary>Type names as C# writes them (<c>SimpleLoader&lt;String&gt;</c>, not <c>SimpleLoader`1</c>), for messages and logs.</summary>
/// <remarks>Thread-safe (no state).</remarks>
internal static class TypeNames
{
    /// <summary>The type's short name with its generic arguments spelled out, nested types joined by dots.</summary>
    public static string Readable(Type type)
    {
        ArgumentNullException.ThrowIfNull(type);
        var text = new StringBuilder();
        Append(text, type);
        return text.ToString();
    }

    /// <summary>Like <see cref="Readable"/>, with the namespace in front (<c>Servables.SimpleLoader&lt;String&gt;</c>).</summary>
    public static string Qualified(Type type)
    {
        ArgumentNullException.ThrowIfNull(type);
        return string.IsNullOrEmpty(type.Namespace) || type.IsGenericParameter ? Readable(type) : type.Namespace + "." + Readable(type);
    }

    private static void Append(StringBuilder text, Type type)
    {
        if (type.IsArray)
        {
            Append(text, type.GetElementType()!);
            text.Append('[').Append(',', type.GetArrayRank() - 1).Append(']');
            return;
        }

        if (Nullable.GetUnderlyingType(type) is { } underlying)
        {
            Append(text, underlying);
            text.Append('?');
            return;
        }

        string name = type.Name;
        int tick = name.IndexOf('`', StringComparison.Ordinal);
        text.Append(tick < 0 ? name : name[..tick]);
        if (type.IsGenericType)
        {
            text.Append('<');
            Type[] arguments = type.GetGenericArguments();
            for (int i = 0; i < arguments.Length; i++)
            {
                if (i > 0)
                {
                    text.Append(", ");
                }

                Append(text, arguments[i]);
            }

            text.Append('>');
        }
    }
}
