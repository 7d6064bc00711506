using System.Runtime.InteropServices;

namespace Servables;

/// <summary>Gives memory that native code freed back to the operating system, where the C allocator keeps it (glibc).</summary>
/// <remarks>
/// glibc's <c>malloc</c> keeps freed memory mapped in its arenas for reuse; after an inference
/// session is destroyed that can be hundreds of megabytes of resident memory the process no longer
/// uses. <c>malloc_trim(0)</c> returns the free pages of every arena. On any other C library (musl
/// has no <c>malloc_trim</c>) and on Windows and macOS this does nothing. Thread-safe: glibc
/// serialises the trim with each arena's own lock.
/// </remarks>
internal static partial class NativeMemoryRelease
{
    private static int s_state; // 0 unknown, 1 available, -1 unavailable

    /// <summary>True where a trim can run (glibc-based Linux).</summary>
    public static bool IsSupported
    {
        get
        {
            if (s_state == 0)
            {
                s_state = OperatingSystem.IsLinux() && Probe() ? 1 : -1;
            }

            return s_state > 0;
        }
    }

    /// <summary>Trims every arena; returns whether memory was given back, or null where trimming is not supported.</summary>
    public static bool? Release()
    {
        if (!IsSupported)
        {
            return null;
        }

        try
        {
            return MallocTrim(0) != 0;
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            s_state = -1;
            return null;
        }
    }

    private static bool Probe()
    {
        try
        {
            // gnu_get_libc_version exists only in glibc; musl and others fail here and are left alone.
            return GnuGetLibcVersion() != IntPtr.Zero;
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc.so.6", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    [LibraryImport("libc.so.6", EntryPoint = "gnu_get_libc_version")]
    private static partial IntPtr GnuGetLibcVersion();
}
