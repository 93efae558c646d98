import ArgumentParser
import Kiln

/// `kiln script NAME`: the exact Lua text of one of Kiln's scripts, for producers and tools in
/// other languages (docs/protocol.md, "Worked example with redis-cli").
struct ScriptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "script",
        abstract: "Print the Lua text of one of Kiln's Redis scripts (for producers in other languages).",
        discussion: "Load it with SCRIPT LOAD and run it with EVALSHA as docs/protocol.md describes (a producer needs enqueue, and get to read results). --list prints the names.")

    @Argument(help: "The script's name, e.g. enqueue or get.") var name: String?
    @Flag(help: "Print the names of all scripts, one per line.") var list = false

    func validate() throws {
        if list == (name != nil) { throw ValidationError(list ? "--list takes no NAME" : "missing script NAME (or --list)") }
    }

    func run() throws {
        if list {
            for s in KilnScripts.all { print(s.name) }
            return
        }
        guard let script = KilnScripts.all.first(where: { $0.name == name }) else {
            throw CLIExit(code: 2, message: "no script named '\(SafeText.escaped(String(name!.prefix(40))))'; `kiln script --list` prints the names")
        }
        print(script.source)
    }
}
