/*
 * fpctl's command line and the commands of the attach shell.  Pure: nothing
 * here reads the environment or prints, so every rule is unit-tested.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "agentcmd.h"
#include "cli.h"
#include "profile_formats.h"

int cli_usage_error(struct cli_error *err, const char *topic, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->topic = topic;
	return 2;
}

/* "123" -> 123; anything but a positive decimal pid -> -1. */
static pid_t parse_pid(const char *s)
{
	if (!s || !*s || strlen(s) > 10)
		return -1;
	long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v > 0 && v <= INT_MAX ? (pid_t)v : -1;
}

static bool is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/*
 * An option with a value: "-f X", "--filepath X" or "--filepath=X".
 * Returns 1 with *val set, 0 if argv[*i] is something else, -1 when the
 * value is missing.
 */
static int opt_value(int argc, char *const argv[], int *i, const char *shrt, const char *lng,
		     const char **val)
{
	const char *a = argv[*i];
	size_t ll = lng ? strlen(lng) : 0;
	if (lng && strncmp(a, lng, ll) == 0 && a[ll] == '=') {
		*val = a + ll + 1;
		return 1;
	}
	if (!((shrt && strcmp(a, shrt) == 0) || (lng && strcmp(a, lng) == 0)))
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

/*
 * --socket, --json, --timeout, --trust-socket.  Returns 1 if argv[*i] was
 * one, 0 if not, 2 on error.
 */
static int global_opt(int argc, char *const argv[], int *i, struct cli_global *g,
		      struct cli_error *err, const char *topic)
{
	const char *val;
	if (strcmp(argv[*i], "--json") == 0) {
		g->json = true;
		return 1;
	}
	if (strcmp(argv[*i], "--trust-socket") == 0) {
		g->trust_socket = true;
		return 1;
	}
	int r = opt_value(argc, argv, i, NULL, "--socket", &val);
	if (r == 1) {
		if (!*val)
			return cli_usage_error(err, topic, "--socket needs a path");
		if (strlen(val) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return cli_usage_error(
			    err, topic, "socket path '%s' is too long (at most %zu bytes)", val,
			    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		g->socket = val;
		return 1;
	}
	if (r)
		return cli_usage_error(err, topic, "--socket needs a path");
	r = opt_value(argc, argv, i, NULL, "--timeout", &val);
	if (r == 1) {
		char *end;
		errno = 0;
		double t = strtod(val, &end);
		if (end == val || *end || errno || !isfinite(t) || t <= 0)
			return cli_usage_error(
			    err, topic, "--timeout takes a number of seconds above 0, not '%s'",
			    val);
		g->timeout_s = t;
		return 1;
	}
	if (r)
		return cli_usage_error(err, topic, "--timeout needs a number of seconds");
	return 0;
}

static int unknown_option(struct cli_error *err, const char *cmd, const char *a)
{
	/* The likely mistake: fpctl's own options written after the command. */
	if (strncmp(a, "--socket", 8) == 0 || strncmp(a, "--timeout", 9) == 0 ||
	    strcmp(a, "--trust-socket") == 0)
		return cli_usage_error(
		    err, cmd, "%s: %.40s is fpctl's own option and goes before the command", cmd,
		    a);
	return cli_usage_error(err, cmd, "%s: unknown option '%.60s'", cmd, a);
}

static int parse_stack(int argc, char *const argv[], pid_t attached, struct cli_cmd *cmd,
		       struct cli_error *err)
{
	bool have_pid = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val;
		int r = opt_value(argc, argv, &i, "-f", "--filepath", &val);
		if (r < 0 || (r == 1 && !*val))
			return cli_usage_error(err, "stack", "stack: %s needs a file name", a);
		if (r == 1) {
			cmd->u.stack.file = val;
		} else if (strcmp(a, "--native") == 0) {
			cmd->u.stack.native = true;
		} else if (strcmp(a, "--locals") == 0) {
			cmd->u.stack.locals = true;
		} else if (strcmp(a, "-a") == 0 || strcmp(a, "--async") == 0) {
			cmd->u.stack.async = true;
		} else if (strcmp(a, "--json") == 0) {
			cmd->json = true;
		} else if (a[0] == '-' && a[1]) {
			return unknown_option(err, "stack", a);
		} else if (have_pid) {
			return cli_usage_error(err, "stack", "stack: unexpected argument '%.60s'",
					       a);
		} else {
			pid_t p = parse_pid(a);
			if (p < 0)
				return cli_usage_error(err, "stack",
						       "stack: '%.60s' is not a process id", a);
			/* One session inspects one process; another pid needs its own attach. */
			if (attached > 0 && p != attached)
				return cli_usage_error(
				    err, "stack", "stack: pid %d is not the attached process (%d)",
				    (int)p, (int)attached);
			have_pid = true;
		}
	}
	return 0;
}

/* The optional pid of an attach command: it must be the attached process. */
static int command_pid(struct cli_error *err, const char *cmd, const char *a, pid_t attached,
		       bool *have_pid)
{
	if (*have_pid)
		return cli_usage_error(err, cmd, "%s: unexpected argument '%.60s'", cmd, a);
	pid_t p = parse_pid(a);
	if (p < 0)
		return cli_usage_error(err, cmd, "%s: '%.60s' is not a process id", cmd, a);
	if (attached > 0 && p != attached)
		return cli_usage_error(err, cmd, "%s: pid %d is not the attached process (%d)", cmd,
				       (int)p, (int)attached);
	*have_pid = true;
	return 0;
}

static int parse_perf(int argc, char *const argv[], pid_t attached, struct cli_cmd *cmd,
		      struct cli_error *err)
{
	bool have_pid = false;
	cmd->u.perf.rate = 100;
	cmd->u.perf.format = CLI_PROFILE_SVG;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val;
		int r;
		if ((r = opt_value(argc, argv, &i, "-f", "--filepath", &val))) {
			if (r < 0 || !*val)
				return cli_usage_error(err, "perf", "perf: %s needs a file name",
						       a);
			cmd->u.perf.file = val;
		} else if ((r = opt_value(argc, argv, &i, "-r", "--rate", &val))) {
			char *end;
			errno = 0;
			long rate = r < 0 ? 0 : strtol(val, &end, 10);
			if (r < 0 || end == val || *end || errno || rate < 1 || rate > 10000)
				return cli_usage_error(
				    err, "perf",
				    "perf: the rate must be a whole number of samples per "
				    "second from 1 to 10000, not '%.40s'",
				    r < 0 ? "" : val);
			cmd->u.perf.rate = (int)rate;
		} else if ((r = opt_value(argc, argv, &i, "-d", "--duration", &val))) {
			char *end;
			errno = 0;
			double d = r < 0 ? -1 : strtod(val, &end);
			if (r < 0 || end == val || *end || errno || !isfinite(d) || d < 0 ||
			    d > 604800)
				return cli_usage_error(
				    err, "perf",
				    "perf: -d takes a number of seconds from 0 (until Ctrl-C) "
				    "to 604800, not '%.40s'",
				    r < 0 ? "" : val);
			cmd->u.perf.duration = d;
		} else if ((r = opt_value(argc, argv, &i, NULL, "--format", &val))) {
			enum cli_profile_format f;
			if (r < 0 || cli_profile_format_parse(val, &f))
				return cli_usage_error(
				    err, "perf",
				    "perf: unknown format '%.40s' (svg, collapsed, "
				    "speedscope or pprof)",
				    r < 0 ? "" : val);
			cmd->u.perf.format = (int)f;
		} else if (strcmp(a, "--native") == 0) {
			cmd->u.perf.native = true;
		} else if (strcmp(a, "--gil") == 0) {
			cmd->u.perf.gil = true;
		} else if (strcmp(a, "--idle") == 0) {
			cmd->u.perf.idle = true;
		} else if (strcmp(a, "--json") == 0) {
			cmd->json = true;
		} else if (a[0] == '-' && a[1]) {
			return unknown_option(err, "perf", a);
		} else if (command_pid(err, "perf", a, attached, &have_pid)) {
			return 2;
		}
	}
	return 0;
}

static int parse_top(int argc, char *const argv[], pid_t attached, struct cli_cmd *cmd,
		     struct cli_error *err)
{
	bool have_pid = false;
	cmd->u.top.rate = 100;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val;
		int r = opt_value(argc, argv, &i, "-r", "--rate", &val);
		if (r) {
			char *end;
			errno = 0;
			long rate = r < 0 ? 0 : strtol(val, &end, 10);
			if (r < 0 || end == val || *end || errno || rate < 1 || rate > 10000)
				return cli_usage_error(
				    err, "top",
				    "top: the rate must be a whole number of samples per "
				    "second from 1 to 10000, not '%.40s'",
				    r < 0 ? "" : val);
			cmd->u.top.rate = (int)rate;
		} else if (strcmp(a, "--json") == 0) {
			cmd->json = true;
		} else if (a[0] == '-' && a[1]) {
			return unknown_option(err, "top", a);
		} else if (command_pid(err, "top", a, attached, &have_pid)) {
			return 2;
		}
	}
	return 0;
}

static int parse_history(int argc, char *const argv[], struct cli_cmd *cmd, struct cli_error *err)
{
	bool have_n = false;
	for (int i = 1; i < argc; i++) {
		const char *val;
		int r = opt_value(argc, argv, &i, "-n", NULL, &val);
		if (r < 0)
			return cli_usage_error(err, "history", "history: -n needs a number");
		if (r == 1) {
			char *end;
			errno = 0;
			long n = strtol(val, &end, 10);
			if (end == val || *end || errno || n <= 0)
				return cli_usage_error(
				    err, "history",
				    "history: -n takes a number above 0, not '%.40s'", val);
			cmd->u.history.last = n;
			have_n = true;
		} else if (strcmp(argv[i], "-c") == 0) {
			cmd->u.history.clear = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return unknown_option(err, "history", argv[i]);
		} else {
			return cli_usage_error(err, "history",
					       "history: unexpected argument '%.60s'", argv[i]);
		}
	}
	if (have_n && cmd->u.history.clear)
		return cli_usage_error(err, "history", "history: -c and -n cannot be combined");
	return 0;
}

/* A threshold, interval or count of gilstat on: a number in [lo, hi]. */
static int gilstat_number(struct cli_error *err, const char *what, const char *a, double lo,
			  double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(a, &end);
	if (end == a || *end || errno || !isfinite(v) || v < lo || v > hi)
		return cli_usage_error(err, "gilstat",
				       "gilstat: %s must be a number from %g to %g, not '%.40s'",
				       what, lo, hi, a);
	*out = v;
	return 0;
}

/* gilstat on [take_ms] [hold_ms] [interval_s] [max_threads] | gilstat off */
static int parse_gilstat(int argc, char *const argv[], struct cli_cmd *cmd, struct cli_error *err)
{
	static const struct {
		const char *what;
		double lo, hi;
	} pos[] = {{"take_ms", 0, 3600e3},
		   {"hold_ms", 0, 3600e3},
		   {"interval_s", 0.1, 3600},
		   {"max_threads", 0, 1e6}};
	double vals[4] = {-1, -1, -1, 0};
	int n = 0;
	const char *mode = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			cmd->json = true;
		} else if (a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) {
			return unknown_option(err, "gilstat", a);
		} else if (!mode) {
			if (strcmp(a, "on") != 0 && strcmp(a, "off") != 0)
				return cli_usage_error(
				    err, "gilstat", "gilstat: say 'on' or 'off', not '%.40s'", a);
			mode = a;
		} else if (strcmp(mode, "off") == 0 || n == 4) {
			return cli_usage_error(err, "gilstat",
					       "gilstat: unexpected argument '%.60s'", a);
		} else if (gilstat_number(err, pos[n].what, a, pos[n].lo, pos[n].hi, &vals[n])) {
			return 2;
		} else {
			n++;
		}
	}
	if (!mode)
		return cli_usage_error(err, "gilstat", "gilstat needs 'on' or 'off'");
	if (vals[3] != (long)vals[3])
		return cli_usage_error(err, "gilstat",
				       "gilstat: max_threads must be a whole number");
	cmd->u.gilstat.off = strcmp(mode, "off") == 0;
	cmd->u.gilstat.take_ms = vals[0];
	cmd->u.gilstat.hold_ms = vals[1];
	cmd->u.gilstat.interval_s = vals[2];
	cmd->u.gilstat.max_threads = (long)vals[3];
	return 0;
}

static int parse_help(int argc, char *const argv[], struct cli_cmd *cmd, struct cli_error *err)
{
	if (argc > 2)
		return cli_usage_error(err, "help", "help takes at most one command name");
	if (argc == 2) {
		if (!cli_command_find(CLI_SHELL, argv[1]) && !cli_command_find(CLI_TOP, argv[1]))
			return cli_usage_error(err, NULL, "no command '%.60s'", argv[1]);
		cmd->u.help_topic = argv[1];
	}
	return 0;
}

int cli_parse_command(int argc, char *const argv[], pid_t attached, struct cli_cmd *cmd,
		      struct cli_error *err)
{
	memset(cmd, 0, sizeof(*cmd));
	const struct cli_command *def = cli_command_find(CLI_SHELL, argv[0]);
	if (!def) {
		if (cli_command_find(CLI_TOP, argv[0]))
			return cli_usage_error(
			    err, argv[0], "'%.60s' is not a command of attach (run 'fpctl %.60s')",
			    argv[0], argv[0]);
		return cli_usage_error(err, NULL, "unknown command '%.60s'", argv[0]);
	}
	cmd->def = def;
	for (int i = 1; i < argc; i++) {
		if (is_help(argv[i])) {
			cmd->def = cli_command_find(CLI_SHELL, "help");
			cmd->u.help_topic = def->name;
			return 0;
		}
	}
	if (def->state == CLI_PLANNED)
		return 0;
	switch (def->id) {
	case CLI_CMD_HELP:
		return parse_help(argc, argv, cmd, err);
	case CLI_CMD_STACK:
		return parse_stack(argc, argv, attached, cmd, err);
	case CLI_CMD_HISTORY:
		return parse_history(argc, argv, cmd, err);
	case CLI_CMD_PERF:
		return parse_perf(argc, argv, attached, cmd, err);
	case CLI_CMD_GILSTAT:
		return parse_gilstat(argc, argv, cmd, err);
	case CLI_CMD_TOP:
		return parse_top(argc, argv, attached, cmd, err);
	case CLI_CMD_AGENT:
		for (int i = 1; i < argc; i++)
			if (strcmp(argv[i], "--json") == 0)
				cmd->json = true;
		cmd->u.agent.argc = argc;
		cmd->u.agent.argv = argv;
		return cli_agent_parse(def, argc, argv, NULL, err);
	default:
		if (argc > 1)
			return cli_usage_error(err, def->name, "%s takes no arguments", def->name);
		return 0;
	}
}

/* The arguments of a top-level command: only global options, --help, and `max` positionals. */
static int top_args(int argc, char *const argv[], int i, struct cli_invocation *inv,
		    const char *name, int max, const char **positional, struct cli_error *err)
{
	int n = 0;
	for (; i < argc; i++) {
		int r = global_opt(argc, argv, &i, &inv->g, err, name);
		if (r == 2)
			return 2;
		if (r == 1)
			continue;
		if (is_help(argv[i])) {
			inv->action = CLI_ACT_HELP;
			inv->help_topic = name;
			return 0;
		}
		if (argv[i][0] == '-' && argv[i][1])
			return unknown_option(err, name, argv[i]);
		if (n == max) {
			if (max == 0)
				return cli_usage_error(err, name, "%s takes no arguments", name);
			return cli_usage_error(err, name, "%s: unexpected argument '%.60s'", name,
					       argv[i]);
		}
		positional[n++] = argv[i];
	}
	return 0;
}

static int parse_attach(int argc, char *const argv[], int i, struct cli_invocation *inv,
			struct cli_error *err)
{
	for (; i < argc; i++) {
		int r = global_opt(argc, argv, &i, &inv->g, err, "attach");
		if (r == 2)
			return 2;
		if (r == 1)
			continue;
		if (is_help(argv[i])) {
			inv->action = CLI_ACT_HELP;
			inv->help_topic = "attach";
			return 0;
		}
		if (inv->pid)
			break; /* the command */
		if (argv[i][0] == '-' && argv[i][1] && !(argv[i][1] >= '0' && argv[i][1] <= '9'))
			return unknown_option(err, "attach", argv[i]);
		inv->pid = parse_pid(argv[i]);
		if (inv->pid < 0)
			return cli_usage_error(err, "attach", "'%.60s' is not a process id",
					       argv[i]);
	}
	if (!inv->pid)
		return cli_usage_error(err, "attach", "attach needs a process id");
	if (i == argc) {
		inv->action = CLI_ACT_SHELL;
		return 0;
	}
	inv->action = CLI_ACT_RUN;
	int r = cli_parse_command(argc - i, argv + i, inv->pid, &inv->cmd, err);
	if (r)
		return r;
	if (inv->cmd.def->shell_only)
		return cli_usage_error(err, inv->cmd.def->name,
				       "'%s' works only in the interactive shell (fpctl attach %d)",
				       inv->cmd.def->name, (int)inv->pid);
	return 0;
}

int cli_parse_argv(int argc, char *const argv[], struct cli_invocation *inv, struct cli_error *err)
{
	memset(inv, 0, sizeof(*inv));
	memset(err, 0, sizeof(*err));
	int i = 1;
	for (; i < argc; i++) {
		int r = global_opt(argc, argv, &i, &inv->g, err, NULL);
		if (r == 2)
			return 2;
		if (r == 1)
			continue;
		if (is_help(argv[i])) {
			inv->action = CLI_ACT_HELP;
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			inv->action = CLI_ACT_VERSION;
			return 0;
		}
		if (argv[i][0] == '-' && argv[i][1])
			return cli_usage_error(err, NULL, "unknown option '%.60s'", argv[i]);
		break;
	}
	if (i == argc)
		return cli_usage_error(err, NULL, "no command given");

	const char *name = argv[i++];
	const struct cli_command *c = cli_command_find(CLI_TOP, name);
	if (!c) {
		if (cli_command_find(CLI_SHELL, name))
			return cli_usage_error(err, name,
					       "'%.60s' runs on a process: fpctl attach PID %.60s",
					       name, name);
		return cli_usage_error(err, NULL, "unknown command '%.60s'", name);
	}
	const char *pos[1] = {NULL};
	switch (c->id) {
	case CLI_CMD_HELP:
		inv->action = CLI_ACT_HELP;
		if (top_args(argc, argv, i, inv, "help", 1, pos, err))
			return 2;
		if (pos[0]) {
			if (!cli_command_find(CLI_TOP, pos[0]) &&
			    !cli_command_find(CLI_SHELL, pos[0]))
				return cli_usage_error(err, NULL, "no command '%.60s'", pos[0]);
			inv->help_topic = pos[0];
		}
		return 0;
	case CLI_CMD_PS:
	case CLI_CMD_STATUS:
		inv->action = c->id == CLI_CMD_PS ? CLI_ACT_PS : CLI_ACT_STATUS;
		return top_args(argc, argv, i, inv, c->name, 0, pos, err);
	case CLI_CMD_ATTACH:
		return parse_attach(argc, argv, i, inv, err);
	case CLI_CMD_DETACH: {
		inv->action = CLI_ACT_DETACH;
		if (top_args(argc, argv, i, inv, c->name, 1, pos, err))
			return 2;
		if (inv->action == CLI_ACT_HELP)
			return 0;
		if (!pos[0])
			return cli_usage_error(err, c->name,
					       "detach needs a process id: fpctl detach PID");
		inv->pid = parse_pid(pos[0]);
		if (inv->pid < 0)
			return cli_usage_error(err, c->name, "detach: '%.60s' is not a process id",
					       pos[0]);
		return 0;
	}
	default:
		/* Planned: its arguments are not defined yet, so none is judged. */
		inv->action = CLI_ACT_PLANNED;
		inv->planned = c->name;
		for (; i < argc; i++) {
			if (is_help(argv[i])) {
				inv->action = CLI_ACT_HELP;
				inv->help_topic = c->name;
			}
		}
		return 0;
	}
}

int cli_split_words(const char *line, char ***argvp, struct cli_error *err)
{
	size_t len = strlen(line);
	/* Words are never longer than the line, and there are at most len/2+1 of them. */
	size_t nmax = len / 2 + 2;
	char **argv = malloc(nmax * sizeof(char *) + len + nmax);
	if (!argv) {
		cli_usage_error(err, NULL, "out of memory");
		return -1;
	}
	char *out = (char *)(argv + nmax);
	int argc = 0;
	const char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p)
			break;
		argv[argc++] = out;
		char quote = 0;
		for (; *p; p++) {
			if (quote) {
				if (*p == quote)
					quote = 0;
				else if (quote == '"' && *p == '\\' &&
					 (p[1] == '"' || p[1] == '\\'))
					*out++ = *++p;
				else
					*out++ = *p;
			} else if (*p == '\'' || *p == '"') {
				quote = *p;
			} else if (*p == '\\' && p[1]) {
				*out++ = *++p;
			} else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
				break;
			} else {
				*out++ = *p;
			}
		}
		*out++ = '\0';
		if (quote) {
			free(argv);
			cli_usage_error(err, NULL, "unterminated %s quote",
					quote == '"' ? "double" : "single");
			return -1;
		}
	}
	argv[argc] = NULL;
	*argvp = argv;
	return argc;
}
