using System.Text;
using Microsoft.Extensions.DependencyInjection;

namespace Servables.Async.Tests.Queue;

public sealed class AsyncApiFuzzTests
{
    private static readonly string[] ContentTypes =
    [
        "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16", "application/problem+json",
        "text/plain", "text/plain; charset=utf-8", "text/plain; charset=us-ascii", "text/plain; charset=iso-8859-1",
        "text/plain; charset=utf-16", "text/plain; charset=bogus-9", "application/octet-stream", "image/png", "text/csv",
        "", " ", "json", "text/", "/plain", "text/plain; charset=\"utf-8\"", "multipart/form-data; boundary=x",
    ];

    /// <summary>1,000 generated bodies and content types: every submit is either refused with a clear exception or ends completed or failed.</summary>
    [Fact]
    public async Task Submit_GeneratedInputs_EveryRequestEndsInADefiniteStatus()
    {
        var random = new Random(20261124);
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o =>
        {
            (o.WorkerCount, o.MaxConcurrencyPerWorker, o.QueueCapacity, o.MaxPayloadBytes) = (2, 4, 2000, 4096);
        }));
        IAsyncApiClient client = host.Client();
        var accepted = new List<string>();
        int rejected = 0;
        for (int i = 0; i < 1000; i++)
        {
            string contentType = ContentTypes[random.Next(ContentTypes.Length)];
            byte[] body = GenerateBody(random);
            try
            {
                accepted.Add(await client.SubmitAsync(body, contentType));
            }
            catch (AsyncRequestRejectedException ex)
            {
                Assert.False(string.IsNullOrWhiteSpace(ex.Message));
                rejected++;
            }
        }

        AsyncRequestStatus[] finals = await Task.WhenAll(accepted.Select(id => client.WaitForCompletionAsync(id, TimeSpan.FromSeconds(30)).AsTask()));
        Assert.All(finals, f =>
        {
            Assert.True(f.IsFinished, $"{f.Id} is {f.Status}");
            Assert.True(f.State == AsyncRequestState.Completed ? f.ResultJson is not null : !string.IsNullOrWhiteSpace(f.Error));
        });
        Assert.Equal(1000, accepted.Count + rejected);
        Assert.Contains(finals, f => f.State == AsyncRequestState.Completed);
        Assert.Contains(finals, f => f.State == AsyncRequestState.Failed);
        Assert.True(rejected > 0);
    }

    private static byte[] GenerateBody(Random random)
    {
        switch (random.Next(6))
        {
            case 0:
                return [];
            case 1:
                return Encoding.UTF8.GetBytes($"{{\"n\":{random.Next()},\"s\":\"{new string('x', random.Next(20))}\"}}");
            case 2:
                return Encoding.UTF8.GetBytes("{\"broken\": [1, 2,");
            case 3:
                return new byte[random.Next(5000)].Select(_ => (byte)random.Next(256)).ToArray();
            case 4:
                return Encoding.UTF8.GetBytes(new string('é', random.Next(1, 50)));
            default:
                byte[] bytes = new byte[random.Next(1, 64)];
                random.NextBytes(bytes);
                return bytes;
        }
    }
}
