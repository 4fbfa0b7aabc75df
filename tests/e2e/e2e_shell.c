/* e2e_shell: bash forks in every way a shell does, and nothing changes.
 *
 * Runs one `bash -c` script full of subshells, pipelines, command and
 * process substitution and a background job, with the shim preloaded and
 * without it: stdout, stderr and exit status must be identical, and equal to
 * what the script is known to print. */
#include <criterion/criterion.h>
#include <string.h>

#include "run_host.h"

static const char script[] =
    "set -o pipefail\n"
    "echo start\n"
    "x=$(echo inner; (echo sub; exit 3); echo \"sub status $?\")\n"
    "echo \"$x\"\n"
    "echo \"nested $(echo \"a $(echo b $(echo c))\")\"\n"
    "printf '%s\\n' one two three | sort -r | tr a-z A-Z\n"
    "( cd / && pwd; exit 4 ); echo \"subshell status $?\"\n"
    "false | true; echo \"pipefail status $?\"\n"
    "{ echo grouped; echo to-err >&2; } 2>&1 | cat\n"
    "f() { read -r a; echo \"f got $a\"; }; echo piped | f\n"
    "printf '1\\n2\\n3\\n' | while read -r n; do echo \"n=$n\"; done\n"
    "cat <(echo procsub)\n"
    "sleep 0 & wait $!; echo \"background status $?\"\n"
    "echo \"$( (exit 6); echo $?)\"\n"
    "exit 5\n";

static const char expected[] = "start\n"
                               "inner\n"
                               "sub\n"
                               "sub status 3\n"
                               "nested a b c\n"
                               "TWO\n"
                               "THREE\n"
                               "ONE\n"
                               "/\n"
                               "subshell status 4\n"
                               "pipefail status 1\n"
                               "grouped\n"
                               "to-err\n"
                               "f got piped\n"
                               "n=1\n"
                               "n=2\n"
                               "n=3\n"
                               "procsub\n"
                               "background status 0\n"
                               "6\n";

Test(shell, bash_prints_the_same_with_and_without_the_shim)
{
	const char *const argv[] = {"/bin/bash", "-c", script, NULL};
	struct host_run plain, shim;
	struct host_env env;

	HOST_RUN(&plain, argv, .envp = host_env_plain(&env), .timeout_s = 30);
	HOST_RUN(&shim, argv, .envp = host_env_shim(&env), .timeout_s = 30);
	cr_assert(host_exited_with(&plain, 5),
	          "without the shim: " HOST_RUN_FMT, HOST_RUN_ARGS(plain));
	cr_assert_str_eq(plain.out.data, expected);
	cr_expect(host_exited_with(&shim, 5), "with the shim: " HOST_RUN_FMT,
	          HOST_RUN_ARGS(shim));
	cr_expect_str_eq(shim.out.data, plain.out.data);
	cr_expect_str_eq(shim.err.data, plain.err.data);
	host_run_free(&plain);
	host_run_free(&shim);
}
