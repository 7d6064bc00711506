using Microsoft.Extensions.Logging;

namespace Servables;

/// <summary>The log messages of Servables.Core (event ids 100–199).</summary>
internal static partial class Log
{
    [LoggerMessage(100, LogLevel.Information, "Loading servable {ServableId}")]
    public static partial void VersionLoading(ILogger logger, ServableId servableId);

    [LoggerMessage(101, LogLevel.Information, "Servable {ServableId} is available (loaded in {ElapsedMs:F1} ms)")]
    public static partial void VersionAvailable(ILogger logger, ServableId servableId, double elapsedMs);

    [LoggerMessage(102, LogLevel.Error, "Servable {ServableId} failed to load after {Attempts} attempt(s); it stays in error until its source stops aspiring it")]
    public static partial void VersionLoadFailed(ILogger logger, ServableId servableId, int attempts, Exception exception);

    [LoggerMessage(103, LogLevel.Warning, "Loading servable {ServableId} failed (attempt {Attempt} of {MaxAttempts}); retrying in {RetryInterval}")]
    public static partial void VersionLoadRetrying(ILogger logger, ServableId servableId, int attempt, int maxAttempts, TimeSpan retryInterval, Exception exception);

    [LoggerMessage(104, LogLevel.Information, "Unloading servable {ServableId} once its last handle is released")]
    public static partial void VersionUnloading(ILogger logger, ServableId servableId);

    [LoggerMessage(105, LogLevel.Information, "Servable {ServableId} unloaded (in {ElapsedMs:F1} ms)")]
    public static partial void VersionUnloaded(ILogger logger, ServableId servableId, double elapsedMs);

    [LoggerMessage(106, LogLevel.Error, "Unloading servable {ServableId} failed; it is removed from the manager anyway")]
    public static partial void VersionUnloadFailed(ILogger logger, ServableId servableId, Exception exception);

    [LoggerMessage(107, LogLevel.Error, "Load of servable {ServableId} refused: {Reason}")]
    public static partial void LoadRefused(ILogger logger, ServableId servableId, string reason);

    [LoggerMessage(108, LogLevel.Information, "Load of servable {ServableId} waits for resources that loads and unloads in progress may free: {Reason}")]
    public static partial void LoadDeferred(ILogger logger, ServableId servableId, string reason);

    [LoggerMessage(109, LogLevel.Debug, "Aspired versions of {ServableName} received: {Versions}")]
    public static partial void AspiredVersionsReceived(ILogger logger, string servableName, string versions);

    [LoggerMessage(110, LogLevel.Warning, "Ignoring aspired version {ServableId} sent for servable {ServableName}: {Reason}")]
    public static partial void AspiredVersionIgnored(ILogger logger, ServableId servableId, string servableName, string reason);

    [LoggerMessage(111, LogLevel.Warning, "Policy {Policy} asked to {Action} {ServableId}, which is {State}; ignored")]
    public static partial void PolicyActionIgnored(ILogger logger, string policy, AspiredVersionActionKind action, ServableId servableId, string state);

    [LoggerMessage(112, LogLevel.Error, "A turn of the manager's state loop failed; the loop goes on")]
    public static partial void ManageStateFailed(ILogger logger, Exception exception);

    [LoggerMessage(113, LogLevel.Warning, "Manager disposed while handles were still held on {ServableIds}; each unloads when its last handle is released")]
    public static partial void VersionsStillLeased(ILogger logger, string servableIds);

    [LoggerMessage(114, LogLevel.Error, "A servable state observer threw; the manager goes on")]
    public static partial void ObserverFailed(ILogger logger, Exception exception);

    [LoggerMessage(115, LogLevel.Information, "Load of servable {ServableId} cancelled: it is no longer aspired or the manager is stopping")]
    public static partial void LoadCancelled(ILogger logger, ServableId servableId);

    [LoggerMessage(116, LogLevel.Information, "Version request for {ServableName} deferred until versions on their way out have left: {Versions}")]
    public static partial void AspiredVersionsDeferred(ILogger logger, string servableName, string versions);

    [LoggerMessage(120, LogLevel.Warning, "Base path {BasePath} of servable {ServableName} does not exist; serving versions are kept")]
    public static partial void BasePathMissing(ILogger logger, string servableName, string basePath);

    [LoggerMessage(121, LogLevel.Warning, "No version folders under {BasePath} of servable {ServableName}; serving versions are kept")]
    public static partial void NoVersionsFound(ILogger logger, string servableName, string basePath);

    [LoggerMessage(122, LogLevel.Warning, "Ignoring {Entry} under the base path of servable {ServableName}: {Reason}")]
    public static partial void EntryIgnored(ILogger logger, string servableName, string entry, string reason);

    [LoggerMessage(123, LogLevel.Warning, "Servable {ServableName}: folders {Chosen} and {Ignored} both name version {Version}; using {Chosen}")]
    public static partial void DuplicateVersionFolder(ILogger logger, string servableName, long version, string chosen, string ignored);

    [LoggerMessage(124, LogLevel.Information, "Servable {ServableName}: aspiring versions {Versions}")]
    public static partial void AspiringVersions(ILogger logger, string servableName, string versions);

    [LoggerMessage(125, LogLevel.Error, "Polling the base path of servable {ServableName} failed; serving versions are kept")]
    public static partial void PollFailed(ILogger logger, string servableName, Exception exception);

    [LoggerMessage(126, LogLevel.Warning, "Servable {ServableName}: specific version {Version} is not under {BasePath}")]
    public static partial void SpecificVersionMissing(ILogger logger, string servableName, long version, string basePath);

    [LoggerMessage(127, LogLevel.Warning, "Base path {BasePath} of servable {ServableName} is missing or empty; unloading all its versions as configured")]
    public static partial void UnloadingForEmptyBasePath(ILogger logger, string servableName, string basePath);

    [LoggerMessage(117, LogLevel.Error, "The source of servable {ServableId} reported an error instead of a loader; the version goes to error")]
    public static partial void SourceReportedError(ILogger logger, ServableId servableId, Exception exception);

    [LoggerMessage(118, LogLevel.Error, "Loading servable {ServableId} timed out after {Timeout} (attempt {Attempts}); its token was cancelled, the version goes to error, and the load worker moves on")]
    public static partial void VersionLoadTimedOut(ILogger logger, ServableId servableId, TimeSpan timeout, int attempts);

    [LoggerMessage(119, LogLevel.Warning, "The timed-out load of servable {ServableId} returned at last and {Outcome}; its resources are released")]
    public static partial void AbandonedLoadReturned(ILogger logger, ServableId servableId, string outcome);

    [LoggerMessage(128, LogLevel.Warning, "The manager stopped waiting (stop timeout {StopTimeout}, or the host's shutdown token) while these were still running; they are abandoned and their unload token cancelled: {Running}")]
    public static partial void StopAbandoned(ILogger logger, TimeSpan stopTimeout, string running);

    [LoggerMessage(129, LogLevel.Debug, "Freed native memory given back to the operating system after unloading {ServableId} (malloc_trim released memory: {Released})")]
    public static partial void NativeMemoryReleased(ILogger logger, ServableId servableId, bool released);

    [LoggerMessage(130, LogLevel.Information, "Waiting for the first version of {ServableNames} to be available before the host starts (up to {Timeout})")]
    public static partial void WaitingForInitialLoad(ILogger logger, string servableNames, TimeSpan timeout);

    [LoggerMessage(131, LogLevel.Information, "Every registered servable has an available version (waited {ElapsedMs:F0} ms)")]
    public static partial void InitialLoadComplete(ILogger logger, double elapsedMs);

    [LoggerMessage(132, LogLevel.Warning, "A batch of queue {QueueName} (size {BatchSize}, {TaskCount} tasks) failed; its tasks fail with the error")]
    public static partial void BatchFailed(ILogger logger, string queueName, int batchSize, int taskCount, Exception exception);
}
