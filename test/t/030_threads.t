# The helper threads of the matrix products inside a backend (OpenBLAS's,
# and oneDNN's OpenMP workers) run with every signal blocked, so cancel,
# terminate and latch signals always reach the backend's own thread.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

plan skip_all => '/proc is not available' unless -d '/proc/self/task';

my $node = RnnlmTest::new_node('threads');
$node->safe_psql('postgres', q{
CREATE TABLE corpus AS
  SELECT 'ticket ' || i || ': the printer on floor ' || (i % 5) || ' is jammed' AS body
    FROM generate_series(1, 300) i;
});

# The SigBlk mask of thread tid of process pid, as an integer.
sub blocked_mask
{
	my ($pid, $tid) = @_;
	open(my $fh, '<', "/proc/$pid/task/$tid/status") or return undef;
	while (<$fh>)
	{
		return hex($1) if /^SigBlk:\s*([0-9a-f]+)/;
	}
	return undef;
}

# SIGINT 2, SIGQUIT 3, SIGUSR1 10, SIGUSR2 12, SIGALRM 14, SIGTERM 15
my $needed = 0;
$needed |= 1 << ($_ - 1) for (2, 3, 10, 12, 14, 15);

# A session that trains with 2 helper threads of the backend named, then
# stays in the backend; its helper threads must block the signals, and it
# must still take a cancel.
sub check_backend
{
	my ($backend) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c', qq{
SET rnnlm.threads = 2;
SET rnnlm.backend = '$backend';
SELECT rnnlm_train('thr_$backend', 'SELECT body FROM corpus',
  '{"epochs": 1, "hidden_size": 64, "embedding_dim": 16, "num_layers": 1}');
SELECT pg_sleep(60) /* parked $backend */;} ],
		'>', \$out, '2>', \$err);
	$node->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60) /* parked $backend */%'
	   AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()})
	  or die "session did not park: $err";
	my $pid = $node->safe_psql('postgres', qq{
	SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60) /* parked $backend */%'
	   AND pid <> pg_backend_pid()});

	opendir(my $dh, "/proc/$pid/task") or die "cannot read /proc/$pid/task: $!";
	my @helpers = grep { /^\d+$/ && $_ != $pid } readdir($dh);
	closedir($dh);
	cmp_ok(scalar(@helpers), '>=', 1,
		"$backend: the backend has helper threads (" . scalar(@helpers) . ')');
	for my $tid (@helpers)
	{
		my $mask = blocked_mask($pid, $tid);
		ok(defined $mask && ($mask & $needed) == $needed,
			sprintf('%s: helper thread %d blocks the backend\'s signals (SigBlk %x)',
				$backend, $tid, $mask // 0));
	}
	my $main = blocked_mask($pid, $pid);
	ok(defined $main && ($main & (1 << 1)) == 0, "$backend: the backend thread itself still takes SIGINT");

	# the parked session can still be cancelled normally
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	$h->finish;
	like($err, qr/canceling statement due to user request/,
		"$backend: cancel reaches the backend, not a helper");
}

check_backend('openblas');
# oneDNN's OpenMP threads, where Debian's libdnnl2 is installed
my $onednn = $node->safe_psql('postgres', q{
	SELECT b->>'usable' FROM jsonb_array_elements(rnnlm_runtime()->'backends') b
	 WHERE b->>'name' = 'onednn'});
SKIP:
{
	skip 'oneDNN (libdnnl2) is not usable here', 4 unless $onednn eq 'true';
	check_backend('onednn');
}

$node->stop;
done_testing();
