// Overlaid into github.com/emersion/go-smtp by bench/peers/inmem/run (go
// build -overlay), never installed: exports the package's own command-line
// parsers so the "command parse" row measures exactly go-smtp's code.
package smtp

// BenchParseCmd is go-smtp's parseCmd.
func BenchParseCmd(line string) (string, string, error) { return parseCmd(line) }

// BenchParseArgs is go-smtp's parseArgs.
func BenchParseArgs(args []string) (map[string]string, error) { return parseArgs(args) }
