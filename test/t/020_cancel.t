# Interrupting a long rnnlm_train: pg_cancel_backend, statement_timeout and
# pg_terminate_backend each stop it promptly, the server stays up, and no
# model row is left behind.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $node = RnnlmTest::new_node('cancel');

# A corpus and options that would train for many minutes.
$node->safe_psql('postgres', q{
CREATE TABLE corpus AS
  SELECT 'line ' || i || ' of a long corpus about printers, tickets and logs' AS body
    FROM generate_series(1, 2000) i;
});
my $long = q{SELECT rnnlm_train('long', 'SELECT body FROM corpus',
  '{"epochs": 10000, "hidden_size": 256, "embedding_dim": 64, "tokenizer": "char"}')};

# Starts the long training in its own psql; returns the harness and outputs.
sub start_training
{
	my ($prefix) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c', $prefix . $long ],
		'>', \$out, '2>', \$err);
	# wait until the statement is running inside the training loop
	$node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE query LIKE '%rnnlm_train(''long''%' AND state = 'active'
		   AND pid <> pg_backend_pid()
		   AND now() - query_start > interval '1 second'})
	  or die "training did not start";
	my $pid = $node->safe_psql('postgres', q{
		SELECT pid FROM pg_stat_activity
		 WHERE query LIKE '%rnnlm_train(''long''%' AND pid <> pg_backend_pid()});
	return ($h, \$out, \$err, $pid);
}

# Seconds until the backend pid is no longer running a statement.
sub seconds_until_stopped
{
	my ($pid, $t0) = @_;
	for (1 .. 600)
	{
		my $busy = $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND state = 'active'");
		return time() - $t0 if $busy eq '0';
		usleep(20_000);
	}
	return 999;
}

# pg_cancel_backend
{
	my ($h, $out, $err, $pid) = start_training('');
	my $t0 = time();
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	my $secs = seconds_until_stopped($pid, $t0);
	$h->finish;
	cmp_ok($secs, '<', 1.0, sprintf('pg_cancel_backend stops training within a second (%.3f s)', $secs));
	like($$err, qr/canceling statement due to user request/, 'the caller sees the cancel');
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM rnnlm.model'), '0',
	'no model is left after a cancel');

# statement_timeout
{
	my $t0 = time();
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		"SET statement_timeout = '2s'; $long");
	my $secs = time() - $t0;
	like($stderr, qr/canceling statement due to statement timeout/, 'statement_timeout cancels training');
	cmp_ok($secs, '<', 3.0, sprintf('and returns within a second of the timeout (%.3f s)', $secs));
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM rnnlm.model'), '0',
	'no model is left after a timeout');

# pg_terminate_backend
{
	my ($h, $out, $err, $pid) = start_training('');
	my $t0 = time();
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	my $gone = 0;
	for (1 .. 500)
	{
		$gone = $node->safe_psql('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid") eq 't';
		last if $gone;
		usleep(20_000);
	}
	my $secs = time() - $t0;
	$h->finish;
	ok($gone && $secs < 1.0, sprintf('pg_terminate_backend ends the backend within a second (%.3f s)', $secs));
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM rnnlm.model'), '0',
	'no model is left after a terminate');

# the server kept running throughout, and a short training still works
is($node->safe_psql('postgres', q{
	SELECT (rnnlm_train('short', 'SELECT body FROM corpus LIMIT 50',
	  '{"epochs": 1, "hidden_size": 16, "embedding_dim": 8, "num_layers": 1}')->>'model')}),
	'short', 'the server still trains after the interruptions');
ok(!$node->log_contains('terminated by signal'), 'no backend crashed');

$node->stop;
done_testing();
