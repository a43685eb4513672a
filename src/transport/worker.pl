# The warm worker (src/transport/worker.rs says why it is Perl and what it guarantees).
# Lines starting with # are dropped and the rest joined before it is sent, so every
# statement ends with ; or a brace.
# Only core builtins and Time::HiRes: every module loaded makes each fork dearer.
use strict; use Time::HiRes ();
my %signame;
my %prctl = (x86_64 => 157, aarch64 => 167, riscv64 => 167, loongarch64 => 167, ppc64le => 171, ppc64 => 171, s390x => 172, i386 => 172, i686 => 172, armv7l => 172, armv6l => 172);
my $arch = `uname -m`; chomp $arch; my $prctl = $prctl{$arch};
# PR_SET_CHILD_SUBREAPER: leftovers that leave the task's group (setsid) become our children.
unless (defined $prctl && syscall($prctl, 36, 1, 0, 0, 0) == 0 && -r "/proc/$$/task/$$/children") { print STDERR "dts worker: no child subreaper here\n"; exit 97; }
pipe(my $wake_r, my $wake_w) or exit 97;
open(my $null, '<', '/dev/null') or exit 97;
my ($in, $eof, $task) = ('', 0, undef);
$SIG{CHLD} = sub { syswrite $wake_w, 'c'; };
$SIG{$_} = sub { $eof = 1; syswrite $wake_w, 'q'; } for qw(TERM HUP INT);
$SIG{PIPE} = 'IGNORE';
sub now { return Time::HiRes::time(); }
# The host's own name for a signal, asked only when a task died of one.
sub signal_name { my ($n) = @_; unless (exists $signame{$n}) { my $name = `kill -l $n 2>/dev/null`; chomp $name; $signame{$n} = $name eq '' ? '-' : $name; } return $signame{$n}; }
sub children { open(my $fh, '<', "/proc/$$/task/$$/children") or return (); my $line = <$fh>; return defined $line ? split(' ', $line) : (); }
# Zombie, not reaped: the leader still holds the group id, so the group can be signalled.
sub leader_done { open(my $fh, '<', "/proc/$task->{pid}/stat") or return 1; my $line = <$fh>; return 1 unless defined $line; return substr($line, rindex($line, ')') + 2, 1) eq 'Z'; }
sub term { return if $task->{term_at}; kill 'TERM', -$task->{pid}; $task->{term_at} = now(); $task->{kill_at} = $task->{term_at} + $task->{grace}; }
sub start {
  while ($in =~ s/\A(?!__dts_e_)[^\n]*\n//) { }
  return 0 unless $in =~ /\A(__dts_e_\S+) (\d+)\n(\d+) (\d+)\n/;
  my ($token, $len, $grace_ms, $secrets_len) = ($1, $2, $3, $4);
  my $head = length($1) + length($2) + 2;
  return 0 if length($in) < $head + $len;
  my $body = substr($in, $head, $len); substr($in, 0, $head + $len) = '';
  $body =~ s/\A[^\n]*\n//;
  my $secrets = substr($body, 0, $secrets_len); my $code = substr($body, $secrets_len);
  my $pid = fork;
  if (!defined $pid) { syswrite STDERR, "dts worker: fork: $!" . $token; syswrite STDOUT, "$token 0 126\n-\n\n$token\n"; return 1; }
  if ($pid == 0) {
    setpgrp(0, 0);
# exec resets the signals the worker handles; PIPE it ignores, which exec would keep.
    $SIG{PIPE} = 'DEFAULT';
    open(STDIN, '<&', $null);
    for my $pair (split /\0/, $secrets) { my ($name, $value) = split /=/, $pair, 2; $ENV{$name} = $value; }
    exec { 'sh' } 'sh', '-c', $code;
# As a shell's exec fails: the reason on stderr, 127 when there is no sh, else 126.
    my $why = $!; syswrite STDERR, "dts worker: cannot run sh -c: $why\n"; CORE::exit($!{ENOENT} ? 127 : 126);
  }
  setpgrp($pid, $pid);
  $task = { pid => $pid, token => $token, grace => $grace_ms / 1000 };
  return 1;
}
sub finish {
  my $pid = $task->{pid};
  kill 'KILL', -$pid;
  waitpid($pid, 0); my $status = $?;
  while (my @kids = children()) { kill 'KILL', @kids; my $reaped = 0; $reaped++ while waitpid(-1, 1) > 0; select(undef, undef, undef, 0.001) unless $reaped; }
  my $signal = $status & 127;
  my ($waited, $name, $word) = $signal ? (128 + $signal, signal_name($signal), 'Killed') : ($status >> 8, '-', 'Done');
  my $token = $task->{token}; $task = undef;
  syswrite STDERR, $token;
  syswrite STDOUT, "$token $pid $waited\n$name\n[1] + $pid $word\n$token\n";
}
syswrite STDOUT, "__dts_warm_ready\n";
while (1) {
  finish() if $task && leader_done();
  if (!$task) { next if start(); exit 0 if $eof; }
# A kill line, or EOF: dts or its connection is gone, so the grace is at most 0.5 s.
  term() if $task && ($in =~ s/\A(?:k\n)+// || $eof);
  $task->{kill_at} = $task->{term_at} + 0.5 if $task && $eof && $task->{kill_at} && $task->{kill_at} > $task->{term_at} + 0.5;
  if ($task && $task->{kill_at} && now() >= $task->{kill_at}) { kill 'KILL', -$task->{pid}; $task->{kill_at} = undef; }
# Perl runs the CHLD handler (which wakes select through the pipe) at its next safe point,
# so a SIGCHLD that lands just before select is only handled once select returns: while a
# task runs, select also wakes every 50 ms to look at the task's state.
  my $timeout = $task ? 0.05 : undef;
  $timeout = $task->{kill_at} - now() if $task && $task->{kill_at} && $task->{kill_at} - now() < $timeout;
  $timeout = 0 if defined $timeout && $timeout < 0;
  my $rin = ''; vec($rin, fileno($wake_r), 1) = 1; vec($rin, 0, 1) = 1 unless $eof;
  my $ready = select(my $rout = $rin, undef, undef, $timeout);
  if ($ready > 0 && !$eof && vec($rout, 0, 1)) { my $got = sysread(STDIN, $in, 65536, length $in); $eof = 1 if defined $got ? $got == 0 : !$!{EINTR}; }
  sysread($wake_r, my $drained, 512) if $ready > 0 && vec($rout, fileno($wake_r), 1);
}
