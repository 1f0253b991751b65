/*
 * The command table: every command of SPEC §3 (typed inside `fpctl attach`)
 * and fpctl's own top-level commands, with the text `help` prints.  A
 * command that is planned is listed and documented, so that users see where
 * the tool is going, but running it says it is not available yet.
 */
#include <string.h>

#include "agentcmd.h"
#include "cli.h"

#define EX(...)                                                                                    \
	(const char *const[])                                                                      \
	{                                                                                          \
		__VA_ARGS__, NULL                                                                  \
	}
#define OPTS(...)                                                                                  \
	(const struct cli_opt_help[])                                                              \
	{                                                                                          \
		__VA_ARGS__,                                                                       \
		{                                                                                  \
			NULL, NULL                                                                 \
		}                                                                                  \
	}

static const struct cli_opt_help no_options[] = {{NULL, NULL}};

static const struct cli_command shell_commands[] = {
    {
	.name = "help",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_HELP,
	.summary = "List the commands, or show how to use one",
	.usage = "help [command]",
	.description = "Without an argument, the table of commands with their state and a\n"
		       "one-line description. With a command name, its usage, summary,\n"
		       "examples and options.",
	.examples = EX("help", "help stack"),
	.options = OPTS({"command", "the command to describe"}),
    },
    {
	.name = "stack",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_STACK,
	.summary = "Python stacks of every thread, the process not stopped",
	.usage = "stack [pid] [-f FILE] [--native] [-a|--async] [--locals]",
	.description = "The Python stack of every thread, read from outside the process: no\n"
		       "code is injected and the process is not stopped, so it works on a\n"
		       "process hung with the GIL held. Each thread prints as a traceback\n"
		       "(most recent call last) with its state (running, holding GIL,\n"
		       "waiting for GIL, sleeping, idle) and the source line of each frame\n"
		       "when the file is readable. Works on stripped, static and shared\n"
		       "interpreters, and inside containers.",
	.examples = EX("# Python stacks of every thread", "stack",
		       "# interleaved with the native (C) frames", "stack --native",
		       "# with each frame's local variables", "stack --locals",
		       "# write the same text to a file", "stack -f ./stack.log",
		       "# asyncio tasks and what each awaits", "stack -a"),
	.options = OPTS({"pid", "process to inspect; only the attached one, which is the default"},
			{"-f, --filepath FILE",
			 "write the stacks to FILE (as you, relative to the current directory)"},
			{"--native", "interleave native frames; stops the process for a few ms"},
			{"--locals", "print each frame's local variables (repr, truncated)"},
			{"-a, --async", "asyncio tasks per event loop and their await chains"},
			{"--json", "one JSON object per event, as fpctl --json does"}),
    },
    {
	.name = "watch",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_watch,
	.summary = "Arguments, result and cost of each call of a function",
	.usage = "watch module [class] method [--expr E] [-f F] [-e] [-x N] [-n N] [-r] [-v] "
		 "[-nm inner]",
	.description = "Every call of the method prints one record: timestamp, method, cost\n"
		       "in ms, success or exception (with its traceback), and the value of\n"
		       "expression E evaluated after the call with target (self or cls of a\n"
		       "method, None for a function), return_obj, cost (ms), args and kwargs\n"
		       "in scope. Only that function is instrumented, and it gets its\n"
		       "original code back when the watch ends: after -n records, Ctrl-C,\n"
		       "--timeout, quit or detach. An expression that fails prints its error\n"
		       "in the record; the call itself is never affected. Works for\n"
		       "functions, methods, classmethods, staticmethods, properties,\n"
		       "generators and coroutines (a call lasts from its start to its end,\n"
		       "awaits included). Needs the in-process helper.",
	.examples = EX("watch __main__ func -x 2", "watch __main__ classA func",
		       "watch __main__ func --expr \"{return_obj,args}\" -f \"cost>10\"",
		       "watch __main__ func -f \"args[0]['query']=='hello'\"",
		       "watch __main__ classA method -e -n 3",
		       "watch __main__ outer -nm inner --expr return_obj"),
	.options = OPTS(
	    {"module", "runtime module name (__main__ for the script)"},
	    {"class", "class of the method, if any (Outer.Inner for a nested one)"},
	    {"method", "function, method, classmethod, staticmethod or property"},
	    {"--expr E", "expression to print (default: args,kwargs)"},
	    {"-f, --filter F", "print only calls for which F is true (same names as --expr)"},
	    {"-e, --exception", "print only calls that raised"},
	    {"-x, --expand N", "expand nested objects to depth N (default 1, at most 4)"},
	    {"-n, --limits N", "stop after N records (default 10)"},
	    {"-r, --raw", "print repr() of the value (runs the application's __repr__)"},
	    {"-v, --verbose", "print strings and containers without truncation"},
	    {"-nm, --nested-method inner", "watch the function inner defined in method"}),
    },
    {
	.name = "trace",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_trace,
	.summary = "Tree of the calls inside each call, with their costs",
	.usage = "trace module [class] method [-i MS] [-et MS] [-d N] [-n N] [-f F] "
		 "[-nm inner]",
	.description = "For each call of the method, the tree of the Python and C (<built-in>)\n"
		       "functions it called, with the time spent in each, under a header with\n"
		       "the time of the call, its thread and its cost. Calls of one function\n"
		       "from one place are one node with their count and total time. -i hides\n"
		       "nodes cheaper than MS (default 0.1 ms); -d shows every node down to N\n"
		       "levels instead. A coroutine is followed across its awaits: the time it\n"
		       "was suspended shows as an [await] node under the call that awaited.\n"
		       "Only the thread running a traced call is traced, and only while it\n"
		       "runs; a profiler the application set (sys.setprofile, cProfile) keeps\n"
		       "working and is restored exactly. The method gets its original code back\n"
		       "when the trace ends: after -n calls, Ctrl-C, --timeout, quit or detach.\n"
		       "Needs the in-process helper.",
	.examples = EX("trace __main__ func", "trace __main__ func -i 1",
		       "trace __main__ classA func -d 3", "trace __main__ classA func -et 30 -n 5",
		       "trace __main__ func -f \"args[0]['query']=='hello'\"",
		       "trace __main__ outer -nm inner"),
	.options =
	    OPTS({"module", "runtime module name (__main__ for the script)"},
		 {"class", "class of the method, if any (Outer.Inner for a nested one)"},
		 {"method", "function, method, classmethod, staticmethod or property"},
		 {"-i, --interval MS", "hide calls cheaper than MS (default 0.1)"},
		 {"-et, --entrance_time MS", "show only calls taking at least MS in all"},
		 {"-d, --depth N", "show every call down to N levels instead of -i"},
		 {"-n, --limits N", "stop after N calls shown (default 10)"},
		 {"-f, --filter F",
		  "show only calls for which F is true (target, args, kwargs, return_obj, cost)"},
		 {"-nm, --nested-method inner", "trace the function inner defined in method"}),
    },
    {
	.name = "tt",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_tt,
	.summary = "Time tunnel: record calls, inspect and replay them later",
	.usage = "tt -t module [class] method [-n N] [-f F] [-nm inner]\n"
		 "tt -l [-m module.Class.method] [-f F]\n"
		 "tt -i IDX [-p] [-x N] [-r] [-v]\n"
		 "tt -d IDX\n"
		 "tt -da\n"
		 "tt --max-records N --max-mb M (alone or with any of the above)",
	.description = "-t records each call of the method (target, arguments, return value or\n"
		       "exception with its traceback, cost, thread, time) under an index from\n"
		       "1000 and prints one row per call, until -n calls are recorded or Ctrl-C;\n"
		       "then the method runs its original code again. -l lists the records,\n"
		       "-i shows one in full, -i IDX -p calls the method again in the helper's\n"
		       "thread with copies of the recorded arguments (on the live target while\n"
		       "it exists) and records that call under a new index.\n"
		       "Records are snapshots taken at the call: the arguments when it starts,\n"
		       "the result when it ends, deep-copied, so that later changes to the\n"
		       "objects do not show; what cannot be copied (locks, sockets,\n"
		       "generators) or is too big for the snapshot budget (20000 objects, 4 MiB\n"
		       "per record) is kept as its text and marked NOT-COPIED; such a record\n"
		       "cannot be replayed.\n"
		       "The records live in the process as long as it runs, not in the session:\n"
		       "they are still there after quit, for the next fpctl attach. The store\n"
		       "keeps at most 1000 records and 64 MiB (estimated), dropping the oldest\n"
		       "first; --max-records and --max-mb change these caps for the process.\n"
		       "-f F is a Python expression over target, args, kwargs, return_obj,\n"
		       "exception and cost: with -t only calls for which it is true are\n"
		       "recorded (it sees the live objects at the end of the call), with -l only\n"
		       "such records are listed. Needs the in-process helper.",
	.examples =
	    EX("# record the next 50 calls", "tt -t __main__ func",
	       "# record calls of a method that took more than 10 ms",
	       "tt -t __main__ classA func -n 5 -f \"cost > 10\"", "tt -l",
	       "tt -l -m __main__.classA.func", "tt -i 1000 -x 3",
	       "# call again with the same arguments", "tt -i 1000 -p", "tt -d 1000", "tt -da",
	       "# keep up to 5000 records and 256 MiB", "tt --max-records 5000 --max-mb 256"),
	.options = OPTS(
	    {"-t module [class] method", "record calls of the method"},
	    {"-n, --limits N", "with -t: calls to record (default 50)"},
	    {"-f, --filter F", "with -t or -l: only calls for which F is true"},
	    {"-nm, --nested-method inner", "with -t: the function inner defined in method"},
	    {"-l, --list", "list the records"},
	    {"-m, --method M", "with -l: only records of M (module.Class.method, or "
			       "module.func)"},
	    {"-i, --index IDX", "show one record"},
	    {"-p, --play", "with -i: call again with the recorded arguments"},
	    {"-x, --expand N", "with -i: expand nested objects to depth N (default 1, at most 4)"},
	    {"-r, --raw", "with -i: use repr() (runs the application's __repr__)"},
	    {"-v, --verbose", "with -i: print strings and containers without truncation"},
	    {"-d, --delete IDX", "delete one record"}, {"-da, --delete_all", "delete every record"},
	    {"--max-records N", "keep at most N records in the process (default 1000)"},
	    {"--max-mb M", "keep at most M MiB of records in the process (default 64)"}),
    },
    {
	.name = "getglobal",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_getglobal,
	.summary = "Value of a module global or class attribute",
	.usage = "getglobal module [class] field [-e E] [-x N] [-r] [-v]",
	.description = "Prints EXPR, TYPE and VALUE of the field: a global of a loaded module\n"
		       "(never imported by this), or an attribute of a class found along its\n"
		       "MRO. Without -r no code of the application runs: containers show\n"
		       "their items and other objects their attributes. Needs the in-process\n"
		       "helper.",
	.examples = EX("getglobal __main__ g_list", "getglobal __main__ classA static_field",
		       "getglobal __main__ config -e \"target['db']\" -x 2"),
	.options =
	    OPTS({"module", "runtime module name (__main__ for the script)"},
		 {"class", "class of the field, if any (Outer.Inner for a nested one)"},
		 {"field", "the global or class attribute"},
		 {"-e, --expr E", "print E evaluated with target bound to the field"},
		 {"-x, --expand N", "expand nested objects to depth N (default 1, at most 4)"},
		 {"-r, --raw", "print repr() of the value (runs the application's __repr__)"},
		 {"-v, --verbose", "print strings and containers without truncation"}),
    },
    {
	.name = "vmtool",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_vmtool,
	.summary = "Live instances of a class, or a full garbage collection",
	.usage = "vmtool -a getInstances -c \"module class\" [-e E] [-x N] [-n N] [-r] [-v]\n"
		 "vmtool -a forceGc",
	.description = "getInstances lists live instances of a class and of its subclasses\n"
		       "(those the garbage collector tracks) and how many there are; forceGc\n"
		       "runs a full collection and reports how many unreachable objects it\n"
		       "found. Needs the in-process helper.",
	.examples = EX("vmtool -a getInstances -c \"__main__ A\"",
		       "vmtool -a getInstances -c \"__main__ A\" -e instances[0].val",
		       "vmtool -a getInstances -c \"__main__ A\" -n -1 -e len(instances)",
		       "vmtool -a forceGc"),
	.options =
	    OPTS({"-a, --action ACTION", "getInstances or forceGc"},
		 {"-c, --class \"module class\"", "the class whose instances to list"},
		 {"-e, --expr E", "print E evaluated with instances bound to the list"},
		 {"-n, --limits N", "instances to take (default 10, -1 for all)"},
		 {"-x, --expand N", "expand nested objects to depth N (default 1, at most 4)"},
		 {"-r, --raw", "print repr() (runs the application's __repr__)"},
		 {"-v, --verbose", "print strings and containers without truncation"}),
    },
    {
	.name = "module",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_module,
	.summary = "Runtime module name of a source file",
	.usage = "module FILEPATH",
	.description = "The name under which FILEPATH is imported in the process, or\n"
		       "'FILEPATH is not imported in target process.' The path is resolved\n"
		       "in the target: ~ is the target user's home, a relative path starts at\n"
		       "the target's working directory and otherwise matches the end of a\n"
		       "loaded module's path. Needs the in-process helper.",
	.examples = EX("module ~/tt_main.py", "module app/models.py"),
	.options = OPTS({"FILEPATH", "source file (or package directory) to look up"}),
    },
    {
	.name = "reload",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_reload,
	.summary = "Recompile a function from its file and swap it in live",
	.usage = "reload module [class] method [-v]",
	.description = "Compiles the file as it is now on disk and puts the new code of the\n"
		       "method into the live function, so every existing reference runs it\n"
		       "from its next call. Works for functions, methods, classmethods,\n"
		       "staticmethods, property accessors and decorated functions; refuses a\n"
		       "change that needs new enclosing variables or non-literal defaults.\n"
		       "Needs the in-process helper.",
	.examples = EX("reload __main__ func", "reload __main__ classA func -v"),
	.options = OPTS({"module", "runtime module name (__main__ for the script)"},
			{"class", "class of the method, if any"},
			{"method", "function, method, classmethod, staticmethod or property"},
			{"-v, --verbose", "print the new source of the method"}),
    },
    {
	.name = "perf",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_PERF,
	.summary = "Sampling profile written as a flame graph",
	.usage = "perf [pid] [-f FILE] [-r RATE] [-d SECONDS] "
		 "[--format svg|collapsed|speedscope|pprof] [--native] [--gil] [--idle]",
	.description = "Samples the process in the kernel (BPF) without stopping it or\n"
		       "injecting code, until Ctrl-C, -d or fpctl's --timeout, or until the\n"
		       "process exits. Then fpctl writes the profile (as you, relative to\n"
		       "the current directory) and prints how many samples it holds, and\n"
		       "how many were lost, cut by a fault or dropped when there were any.\n"
		       "Without -f the file is named after the format: flamegraph.svg,\n"
		       "profile.collapsed, profile.speedscope.json or profile.pb.gz.\n"
		       "svg is an interactive flame graph for a browser; collapsed is\n"
		       "Brendan Gregg's folded stacks (flamegraph.pl, inferno); speedscope\n"
		       "opens in speedscope.app; pprof is read by `go tool pprof`, Parca or\n"
		       "Pyroscope. With --json the profile event is printed as well.",
	.examples = EX("# until Ctrl-C, into ./flamegraph.svg", "perf",
		       "# 30 s at 1000 Hz with the native frames", "perf -d 30 -r 1000 --native",
		       "# for speedscope.app", "perf -d 10 --format speedscope",
		       "# for go tool pprof", "perf -d 10 --format pprof -f /tmp/cpu.pb.gz",
		       "# folded stacks of the thread holding the GIL",
		       "perf -d 10 --gil --format collapsed"),
	.options = OPTS({"pid", "process to profile; only the attached one (the default)"},
			{"-f, --filepath FILE", "output file (default: named after the format)"},
			{"-r, --rate RATE", "samples per second, 1 to 10000 (default 100)"},
			{"-d, --duration S", "stop after S seconds (default: Ctrl-C)"},
			{"--format F", "svg (default), collapsed, speedscope or pprof"},
			{"--native", "include native frames"},
			{"--gil", "only samples of the thread holding the GIL"},
			{"--idle", "include sleeping threads"}),
    },
    {
	.name = "top",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_TOP,
	.summary = "Live view of the hottest functions",
	.usage = "top [pid] [-r RATE]",
	.description = "Full-screen view of the functions the process spends its time in,\n"
		       "sampled in the kernel (BPF) without stopping it and refreshed every\n"
		       "second: %Own and %Total are the last second's share of samples with\n"
		       "the function innermost or anywhere on the stack, OwnTime and\n"
		       "TotalTime add up since the start. Keys 1-4 sort by those columns\n"
		       "(default OwnTime); q or Ctrl-C quits. When stdout is not a terminal\n"
		       "a text table is printed every second instead, until Ctrl-C or\n"
		       "fpctl's --timeout.",
	.examples = EX("# live view at 100 samples per second", "top", "# more samples per second",
		       "top -r 500", "# a text table every second for 10 s, into a file",
		       "fpctl attach --timeout 10 1234 top > top.log"),
	.options = OPTS({"pid", "process to sample; only the attached one, which is the default"},
			{"-r, --rate RATE", "samples per second, 1 to 10000 (default 100)"},
			{"--json", "print each second's profile event as one JSON object"}),
    },
    {
	.name = "console",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_console,
	.summary = "Interactive Python console inside the process",
	.usage = "console",
	.description = "A Python prompt in the namespace of __main__ (the application's\n"
		       "globals), with multi-line blocks and tracebacks as in Python's own.\n"
		       "Statements run on a thread of the console's own; only what they\n"
		       "print comes back, the application's output stays where it goes.\n"
		       "Ctrl-C interrupts the running statement (one blocked in a C call\n"
		       "sees it when the call returns; a second Ctrl-C leaves the console);\n"
		       "Ctrl-D or exit() leaves. On a pipe, lines are read from stdin.\n"
		       "Needs the in-process helper.",
	.examples = EX("console", "# one statement from a script",
		       "echo 'print(len(cache))' | fpctl attach 1234 console"),
	.options = no_options,
    },
    {
	.name = "mem",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_mem,
	.summary = "Object counts and sizes per type, or their change",
	.usage = "mem summary [--limit N] [--order descending|ascending]\n"
		 "mem diff [--interval S] [--limit N] [--order descending|ascending]",
	.description = "summary: the number of objects and their total size (sys.getsizeof)\n"
		       "per type, largest first. diff: the change per type between two\n"
		       "snapshots S seconds apart, largest growth first. Counted is every\n"
		       "object reachable from the loaded modules and the threads' stacks,\n"
		       "each once, tracked by the GC or not (ints and strs too); objects only\n"
		       "C code holds are not. The heap is walked in slices so that no\n"
		       "thread waits more than a few ms for the GIL, which takes seconds on\n"
		       "millions of objects; objects created or freed meanwhile make the\n"
		       "counts approximate. Needs the in-process helper.",
	.examples = EX("mem summary", "mem summary --limit 100 --order descending",
		       "mem diff --interval 10 --limit 100"),
	.options = OPTS({"--limit N", "types to show (default 10)"},
			{"--order O", "descending (default: largest first) or ascending"},
			{"--interval S", "diff: seconds between the snapshots (default 15)"}),
    },
    {
	.name = "gilstat",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_GILSTAT,
	.summary = "Per-thread GIL wait and hold statistics",
	.usage = "gilstat on [take_ms] [hold_ms] [interval_s] [max_threads] [--json]\n"
		 "gilstat off",
	.description =
	    "'on' places uprobes on the interpreter's take_gil and drop_gil (nothing is\n"
	    "written into the target) and, every interval, prints one table: per thread\n"
	    "the GIL takes, total and average wait for it, total and average hold, and\n"
	    "drops, busiest first, with the switches per second. Each wait longer than\n"
	    "take_ms and each hold longer than hold_ms is printed as a warning line as\n"
	    "it happens (thread, duration, threshold, start and end in CLOCK_MONOTONIC\n"
	    "ns). It runs in the foreground until Ctrl-C or --timeout, or until the\n"
	    "target exits; in the attach shell Ctrl-C stops it and returns to the\n"
	    "prompt. Stopping removes every probe.\n"
	    "'off' stops the gilstats another session runs on this process and says\n"
	    "how many it stopped.\n"
	    "Works on stripped interpreters: symbols come from .symtab, MiniDebugInfo\n"
	    "or a debug file under /usr/lib/debug, else from the machine code (the\n"
	    "first line of the output says which, and what that misses). Each GIL\n"
	    "switch costs a few microseconds of probes: a report warns when that\n"
	    "exceeds 2% of a CPU.",
	.examples = EX("gilstat on", "gilstat on 5 5", "gilstat on 10 20 1 4", "gilstat off"),
	.options = OPTS({"take_ms", "warn about each wait longer than this (default 5; 0: never)"},
			{"hold_ms", "warn about each hold longer than this (default 5; 0: never)"},
			{"interval_s", "seconds between reports (default 5)"},
			{"max_threads", "threads per report, busiest first (default 0: all)"},
			{"--json", "one JSON event per line"}),
    },
    {
	.name = "torch",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_torch,
	.summary = "PyTorch profile or CUDA memory snapshot of the next call",
	.usage = "torch profile module [class] method [-f FILE.json] [-nm inner]\n"
		 "torch memory -s [-f FILE.pickle]\n"
		 "torch memory -r module [class] method [-f FILE.pickle] [-nm inner]",
	.description = "profile: the next call of the method runs under torch.profiler (CPU,\n"
		       "plus CUDA where available); its Chrome trace is written to FILE\n"
		       "(default trace.json). memory -s: a CUDA memory snapshot; memory -r:\n"
		       "CUDA allocations are recorded during the next call of the method\n"
		       "(default snapshot.pickle, for pytorch.org/memory_viz). Files are\n"
		       "written by fpctl, relative to its working directory. Only that\n"
		       "function is instrumented, until its next call ends, Ctrl-C or\n"
		       "detach. A process that has not imported torch, or has no CUDA for\n"
		       "memory, gets one line and is left alone. Needs the in-process helper.",
	.examples = EX("torch profile __main__ A hello", "torch profile __main__ A hello -f a.json",
		       "torch memory -s", "torch memory -r __main__ Solution call"),
	.options = OPTS({"module", "runtime module name (__main__ for the script)"},
			{"class", "class of the method, if any"},
			{"method", "function, method or coroutine whose next call is observed"},
			{"-f, --filepath FILE", "output file (.json for profile, .pickle for memory)"},
			{"-nm, --nested-method inner", "the function inner defined in method"},
			{"-s, --snapshot", "snapshot the CUDA memory now"},
			{"-r, --record", "record allocations during the next call"}),
    },
    {
	.name = "gpu",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_AGENT,
	.agent = &cli_agent_gpu,
	.summary = "CUDA kernels and copies, with the Python stacks behind",
	.usage = "gpu [-d SECONDS] [-f FILE.json]",
	.description = "Captured through CUPTI (libfpcupti.so, loaded into the target only when\n"
		       "it already runs CUDA with a context) for -d seconds (default 5), and\n"
		       "written by fpctl as a Chrome/Perfetto trace (default gpu_trace.json):\n"
		       "kernels, copies, memsets on GPU stream tracks, the Python stack of each\n"
		       "launch on its thread's track, a flow from each launch to its kernel.\n"
		       "Prints the kernels with the most GPU time.",
	.examples = EX("gpu", "gpu -d 10 -f gpu.json"),
	.options = OPTS({"-d, --duration SECONDS", "capture duration, 0.1 to 3600 (default 5)"},
			{"-f, --filepath FILE.json", "output file (default gpu_trace.json)"}),
    },
    {
	.name = "history",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_HISTORY,
	.shell_only = true,
	.summary = "Show or clear the commands typed in the shell",
	.usage = "history [-c] [-n N]",
	.description = "The history is kept in ~/.fpctl_history across sessions.",
	.examples = EX("history", "history -n 10", "history -c"),
	.options = OPTS({"-n N", "only the last N commands"}, {"-c", "clear the history"}),
    },
    {
	.name = "cls",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_CLS,
	.shell_only = true,
	.summary = "Clear the screen",
	.usage = "cls",
	.description = "Clears the terminal.",
	.examples = EX("cls"),
	.options = no_options,
    },
    {
	.name = "quit",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_QUIT,
	.shell_only = true,
	.summary = "Leave the shell and detach",
	.usage = "quit",
	.description = "Leaves the shell; Ctrl-D does the same.",
	.examples = EX("quit"),
	.options = no_options,
    },
    {
	.name = "exit",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_QUIT,
	.shell_only = true,
	.summary = "Same as quit",
	.usage = "exit",
	.description = "Leaves the shell; Ctrl-D does the same.",
	.examples = EX("exit"),
	.options = no_options,
    },
};

static const struct cli_command top_commands[] = {
    {
	.name = "ps",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_PS,
	.summary = "List the Python processes on this host",
	.usage = "fpctl ps",
	.description = "Pid, user, CPython version, build (shared or static, symbols or\n"
		       "stripped), executable and whether the helper is loaded. A user\n"
		       "other than root sees only their own processes.",
	.examples = EX("fpctl ps", "fpctl --json ps"),
	.options = no_options,
    },
    {
	.name = "status",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_STATUS,
	.summary = "Show the state of the fpd daemon",
	.usage = "fpctl status",
	.description = "Daemon pid, version, protocol, socket, uptime, connected clients,\n"
		       "BPF availability and loaded helpers.",
	.examples = EX("fpctl status"),
	.options = no_options,
    },
    {
	.name = "attach",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_ATTACH,
	.summary = "Open a shell on a process, or run one command on it",
	.usage = "fpctl attach PID [command ...]",
	.description = "Without a command: an interactive shell (prompt fpctl(PID)>, line\n"
		       "editing, history in ~/.fpctl_history, tab completion; Ctrl-C stops\n"
		       "the running command, quit or Ctrl-D leaves). With a command: runs it\n"
		       "and exits when it ends. Global options may follow attach.",
	.examples = EX("fpctl attach 1234", "fpctl attach 1234 stack --native",
		       "fpctl --json attach 1234 stack", "fpctl attach --timeout 5 1234 stack"),
	.options = OPTS({"PID", "the Python process"},
			{"command ...", "a command of 'fpctl help', with its arguments"}),
    },
    {
	.name = "detach",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_DETACH,
	.summary = "End the helper sessions on a process, undo their hooks",
	.usage = "fpctl detach PID",
	.description = "Ends the helper sessions of every client attached to the process:\n"
		       "what watch, trace and tt installed is removed and the functions run\n"
		       "their original code again. The helper stays loaded, idle, with no\n"
		       "thread of its own; the next helper command starts a new session.",
	.examples = EX("fpctl detach 1234"),
	.options = OPTS({"PID", "the process"}),
    },
    {
	.name = "record",
	.state = CLI_PLANNED,
	.id = CLI_CMD_OTHER,
	.summary = "Continuous, fleet-wide sampling of every Python process",
	.usage = "fpctl record ...",
	.description = "Low-rate sampling of every Python process on the host, written as\n"
		       "pprof profiles and served to Parca, Pyroscope or Grafana.",
	.examples = EX("fpctl record"),
	.options = no_options,
    },
    {
	.name = "help",
	.state = CLI_AVAILABLE,
	.id = CLI_CMD_HELP,
	.summary = "List the commands, or show how to use one",
	.usage = "fpctl help [command]",
	.description = "Without an argument, every command with its state. With a command\n"
		       "name, its usage, summary, examples and options.",
	.examples = EX("fpctl help", "fpctl help stack"),
	.options = OPTS({"command", "the command to describe"}),
    },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const struct cli_command *cli_command_at(enum cli_scope scope, size_t n)
{
	if (scope == CLI_TOP)
		return n < NELEM(top_commands) ? &top_commands[n] : NULL;
	return n < NELEM(shell_commands) ? &shell_commands[n] : NULL;
}

const struct cli_command *cli_command_find(enum cli_scope scope, const char *name)
{
	const struct cli_command *c;
	for (size_t i = 0; (c = cli_command_at(scope, i)); i++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}
