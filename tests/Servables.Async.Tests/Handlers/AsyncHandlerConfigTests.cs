using Microsoft.Extensions.Configuration;

namespace Servables.Async.Tests.Handlers;

public sealed class AsyncHandlerConfigTests
{
    [Fact]
    public void BindConfig_CopiesSectionWithNestedKeys()
    {
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Apis:summarize:max_words"] = "120",
            ["Apis:summarize:model:name"] = "t5",
            ["Apis:other:x"] = "no",
        }).Build();
        var options = new AsyncApiOptions().BindConfig(configuration.GetSection("Apis:summarize"));

        var config = new AsyncHandlerConfig(options.Config) { ApiName = "summarize" };
        Assert.Equal(2, config.Count);
        Assert.Equal(120, config.GetValue("MAX_WORDS", 0));
        Assert.Equal("t5", config["model:name"]);
        Assert.Equal(7, config.GetValue("missing", 7));
        FormatException error = Assert.Throws<FormatException>(() => config.GetValue("model:name", 0));
        Assert.Contains("'model:name' of API 'summarize'", error.Message, StringComparison.Ordinal);
    }
}
