using Spectre.Console;

namespace Servables.QuickStart;

/// <summary>What the quick start shows: a live display on a terminal (a spinner per step, tables), plain lines when the output is redirected (CI logs).</summary>
internal sealed class Ui(bool plain)
{
    public async Task<T> StepAsync<T>(string what, Func<Task<T>> step)
    {
        T result = default!;
        if (plain)
        {
            Console.WriteLine($"- {what}");
            result = await step();
        }
        else
        {
            await AnsiConsole.Status().Spinner(Spinner.Known.Dots).StartAsync(what, async _ => result = await step());
            AnsiConsole.MarkupLine($"[green]✓[/] {Markup.Escape(what)}");
        }

        return result;
    }

    public async Task StepAsync(string what, Func<Task> step) => await StepAsync(what, async () =>
    {
        await step();
        return 0;
    });

    public void Table(string title, string[] columns, IEnumerable<string[]> rows)
    {
        if (plain)
        {
            Console.WriteLine($"  {title}");
            Console.WriteLine("    " + string.Join(" | ", columns));
            foreach (string[] row in rows)
            {
                Console.WriteLine("    " + string.Join(" | ", row));
            }

            return;
        }

        var table = new Table().Title(Markup.Escape(title)).Border(TableBorder.Rounded);
        foreach (string column in columns)
        {
            table.AddColumn(Markup.Escape(column));
        }

        foreach (string[] row in rows)
        {
            table.AddRow([.. row.Select(Markup.Escape)]);
        }

        AnsiConsole.Write(table);
    }

    public void Line(string text)
    {
        if (plain)
        {
            Console.WriteLine(text);
        }
        else
        {
            AnsiConsole.MarkupLine(Markup.Escape(text));
        }
    }
}
