namespace Servables;

/// <summary>A kind of resource on one device, such as main memory or the memory of GPU 0.</summary>
/// <remarks>Immutable; compares by value.</remarks>
/// <param name="Device">The device class: <c>main</c> for the host, <c>gpu</c> for accelerators.</param>
/// <param name="DeviceInstance">Which device of that class (0 for the host).</param>
/// <param name="Kind">What is counted, such as <c>ram</c> or <c>memory</c>, in bytes.</param>
public readonly record struct Resource(string Device, int DeviceInstance, string Kind)
{
    /// <summary>Host memory, in bytes.</summary>
    public static Resource Ram { get; } = new("main", 0, "ram");

    /// <summary>Memory of GPU <paramref name="device"/>, in bytes.</summary>
    public static Resource GpuMemory(int device = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(device);
        return new Resource("gpu", device, "memory");
    }

    /// <summary>Returns <c>device:instance/kind</c>, such as <c>gpu:0/memory</c>.</summary>
    public override string ToString() => $"{Device}:{DeviceInstance}/{Kind}";
}
