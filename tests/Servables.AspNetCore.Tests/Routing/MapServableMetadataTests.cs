using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Servables.Onnx;
using Servables.Testing;
using Servables.Testing.Onnx;
using Servables.Testing.Torch;
using Servables.Torch;

namespace Servables.AspNetCore.Tests.Routing;

/// <summary>KServe V2 metadata and readiness of a real ONNX model and a real TorchScript module, over a real Kestrel.</summary>
public sealed class MapServableMetadataTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task Metadata_OfOnnxAndTorchServables_InKServeShapes_FieldByField()
    {
        await using KestrelHost host = await StartAsync();

        using JsonDocument onnx = JsonDocument.Parse(await host.Client.GetStringAsync("/v2/models/linear"));
        Assert.Equal("{\"name\":\"linear\",\"versions\":[\"3\"],\"platform\":\"onnxruntime_onnx\",\"inputs\":[{\"name\":\"X\",\"datatype\":\"FP32\",\"shape\":[-1,3]}],\"outputs\":[{\"name\":\"Y\",\"datatype\":\"FP32\",\"shape\":[-1,2]}]}", onnx.RootElement.GetRawText());
        Assert.Equal(onnx.RootElement.GetRawText(), JsonDocument.Parse(await host.Client.GetStringAsync("/v2/models/linear/versions/3")).RootElement.GetRawText());

        using JsonDocument torch = JsonDocument.Parse(await host.Client.GetStringAsync("/v2/models/affine"));
        Assert.Equal("{\"name\":\"affine\",\"versions\":[\"1\"],\"platform\":\"pytorch_torchscript\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1,3]}],\"outputs\":[{\"name\":\"output\",\"datatype\":\"FP32\",\"shape\":[-1,2]}]}", torch.RootElement.GetRawText());
    }

    [Fact]
    public async Task Readiness_AndWhatIsNotThere()
    {
        await using KestrelHost host = await StartAsync();

        await AssertAsync(host, "/v2/models/linear/ready", HttpStatusCode.OK, "{\"name\":\"linear\",\"ready\":true}");
        await AssertAsync(host, "/v2/models/linear/versions/3/ready", HttpStatusCode.OK, "{\"name\":\"linear\",\"ready\":true}");
        await AssertAsync(host, "/v2/models/linear/versions/1/ready", HttpStatusCode.BadRequest, "{\"name\":\"linear\",\"ready\":false}"); // on disk, not served (the newest only)
        await AssertAsync(host, "/v2/models/nobody/ready", HttpStatusCode.BadRequest, "{\"name\":\"nobody\",\"ready\":false}");
        await AssertAsync(host, "/v2/models/linear/versions/1", HttpStatusCode.NotFound, "{\"error\":\"Version 1 of model 'linear' is not available (available: 3).\"}");
        await AssertAsync(host, "/v2/models/nobody", HttpStatusCode.NotFound, "{\"error\":\"Model 'nobody' has no available version.\"}");
        await AssertAsync(host, "/v2/models/linear/versions/x1", HttpStatusCode.BadRequest, "{\"error\":\"'x1' is not a model version: versions are whole numbers, 0 or more.\"}");
    }

    private async Task<KestrelHost> StartAsync()
    {
        string linear = _folder.Combine("linear");
        byte[] model = OnnxModelWriter.Linear(new float[,] { { 1, 0 }, { 0, 1 }, { 1, 1 } }, [0.5f, -0.5f]).ToArray();
        ModelRepository.WriteVersion(linear, 1, model, "model.onnx");
        ModelRepository.WriteVersion(linear, 3, model, "model.onnx");
        string affine = _folder.Combine("affine");
        ModelRepository.WriteVersion(affine, 1, TorchScriptWriter.Affine(new float[,] { { 1, 0 }, { 0, 1 }, { 1, 1 } }, [0f, 0f]), "model.pt");

        return await KestrelHost.StartAsync(
            services => services.AddServables()
                .AddOnnxServable("linear", linear)
                .AddTorchServable("affine", affine, o =>
                {
                    o.Inputs.Add(new TensorMetadata("input", "FP32", [-1, 3]));
                    o.Outputs.Add(new TensorMetadata("output", "FP32", [-1, 2]));
                }),
            app => app.MapServableMetadata());
    }

    private static async Task AssertAsync(KestrelHost host, string path, HttpStatusCode status, string json)
    {
        HttpResponseMessage response = await host.Client.GetAsync(path);
        Assert.Equal((status, json), (response.StatusCode, await response.Content.ReadAsStringAsync()));
    }
}
