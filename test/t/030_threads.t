# BLAS helper threads inside a backend run with every signal blocked, so
# cancel, terminate and latch signals always reach the backend's own thread.
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

# A session that trains with 2 BLAS threads, then stays in the backend.
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c', q{
SET rnnlm.threads = 2;
SELECT rnnlm_train('thr', 'SELECT body FROM corpus',
  '{"epochs": 1, "hidden_size": 64, "embedding_dim": 16, "num_layers": 1}');
SELECT pg_sleep(60) /* parked */;} ],
	'>', \$out, '2>', \$err);
$node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60) /* parked */%'
	   AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()})
  or die "session did not park";
my $pid = $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60) /* parked */%'
	   AND pid <> pg_backend_pid()});

# The SigBlk mask of a thread, as an integer.
sub blocked_mask
{
	my ($tid) = @_;
	open(my $fh, '<', "/proc/$pid/task/$tid/status") or return undef;
	while (<$fh>)
	{
		return hex($1) if /^SigBlk:\s*([0-9a-f]+)/;
	}
	return undef;
}

opendir(my $dh, "/proc/$pid/task") or die "cannot read /proc/$pid/task: $!";
my @helpers = grep { /^\d+$/ && $_ != $pid } readdir($dh);
closedir($dh);
cmp_ok(scalar(@helpers), '>=', 1, 'the backend has BLAS helper threads (' . scalar(@helpers) . ')');

# SIGINT 2, SIGQUIT 3, SIGUSR1 10, SIGUSR2 12, SIGALRM 14, SIGTERM 15
my $needed = 0;
$needed |= 1 << ($_ - 1) for (2, 3, 10, 12, 14, 15);
for my $tid (@helpers)
{
	my $mask = blocked_mask($tid);
	ok(defined $mask && ($mask & $needed) == $needed,
		sprintf('helper thread %d blocks the backend\'s signals (SigBlk %x)', $tid, $mask // 0));
}
my $main = blocked_mask($pid);
ok(defined $main && ($main & (1 << 1)) == 0, 'the backend thread itself still takes SIGINT');

# the parked session can still be cancelled normally
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$h->finish;
like($err, qr/canceling statement due to user request/, 'cancel reaches the backend, not a helper');

$node->stop;
done_testing();
