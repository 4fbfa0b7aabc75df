# forky.sh: bash forking in every way a shell does.  Its output is fixed
# (forky.sh.expected), whatever the scheduling: every background job is
# waited for before anything it printed is shown.  Exits 7.
set -u
set -o pipefail
echo start

# Command substitution, nested, and a subshell's exit status inside it.
x=$(echo inner; (echo sub; exit 3); echo "sub status $?")
echo "$x"
echo "nested $(echo "a $(echo b $(echo c $(echo d)))")"

# Pipelines, with builtins and functions in their stages.
printf '%s\n' pear apple fig | sort | tr a-z A-Z
f() { while read -r w; do echo "f:$w"; done; }
printf '%s\n' 1 2 3 | f | tac
false | true; echo "pipefail status $?"
true | (exit 9) | true; echo "middle stage status $? ${PIPESTATUS[*]}"
{ echo grouped-out; echo grouped-err >&2; } 2>&1 | sed 's/^/piped: /'

# Subshells changing state that must not leak back.
v=outer
( v=inner; cd /; echo "in subshell: $v $PWD"; exit 4 )
echo "after subshell: $v status $?"

# Process substitution, both directions.
cat <(echo procsub-in)
echo procsub-out > >(sed 's/^/seen: /')
wait $!

# Background jobs: many at once, each with its own status.
tmp=$(mktemp -d)
for i in 1 2 3 4 5 6 7 8; do
	( echo "job $i" > "$tmp/$i"; exit "$i" ) &
	pids[i]=$!
done
for i in 1 2 3 4 5 6 7 8; do
	wait "${pids[i]}"; echo "job $i status $? says $(cat "$tmp/$i")"
done
sleep 0.05 & sleep 0.01 &
wait; echo "wait all status $?"
(sleep 0.02; exit 12) & wait -n "$!"; echo "wait -n status $?"

# Traps: a signal sent to ourselves, one sent by a child, ERR, and a
# subshell, where traps are reset.
trap 'echo "got USR1"' USR1
kill -USR1 $$
( kill -USR1 "$$" )     # $$ is the parent shell, even in a subshell
trap 'echo "got USR2 from child"' USR2
bash -c 'kill -USR2 $PPID'
sleep 0.05
trap 'echo "ERR trap: status $?"' ERR
(exit 5)
trap - ERR
( trap -p USR1 | sed 's/^/inherited: /'; echo "subshell trap list done" )

# Coprocess.  Its variables vanish as soon as bash reaps it: keep a copy
# of its pid and of its output's fd while it is alive.
coproc upper { tr a-z A-Z; }
upper_pid=$upper_PID
exec {rd}<&"${upper[0]}"
echo "coproc says hello" >&"${upper[1]}"
exec {upper[1]}>&-
read -r line <&"$rd"
exec {rd}<&-
wait "$upper_pid"; echo "coproc: $line, status $?"

# Here-strings and here-docs through a forked reader.
tr a-z A-Z <<<"here string"
cat <<EOF | wc -l
one
two
three
EOF

# exec in a subshell replaces only the subshell.
( exec echo exec-in-subshell )
echo "still here"

# A loop of short-lived children.
n=0
for i in $(seq 1 60); do n=$((n + $(echo 1))); done
echo "loop children: $n"

rm -r "$tmp"
trap 'echo "EXIT trap"' EXIT
echo "to stderr at the end" >&2
exit 7
