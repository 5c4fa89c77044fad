# Crash recovery: a backend killed with SIGKILL in the middle of a long
# rnnlm_train makes the postmaster restart every backend and run crash
# recovery; committed models come back unchanged (same perplexities, same
# greedy text), the model being trained and a model trained in a transaction
# that never committed are gone, and training still works.  A model committed
# just before an immediate shutdown survives it.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $node = RnnlmTest::new_node('recovery');
# the crash-restart is the default, but the test depends on it
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
$node->reload;

$node->safe_psql('postgres', q{
CREATE TABLE corpus AS
  SELECT 'the printer on floor ' || (i % 7) || ' is jammed again and ticket ' || i
         || ' asks for paper' AS body
    FROM generate_series(1, 200) i;
CREATE TABLE long_corpus AS
  SELECT 'line ' || i || ' of a long corpus about printers, tickets and logs' AS body
    FROM generate_series(1, 2000) i;
});

my $tiny = '"embedding_dim": 8, "hidden_size": 16, "num_layers": 1, "epochs": 2';
my @texts = (
	'the printer on floor 3 is jammed',
	'ticket 12 asks for paper',
	'completely unrelated words about elephants',
	'x');

# Trains a tiny model quietly; returns the model name from the summary.
sub train_tiny
{
	my ($name, $extra) = @_;
	$extra = defined $extra ? ", $extra" : '';
	return $node->safe_psql('postgres', qq{
SET client_min_messages = warning;
SELECT rnnlm_train('$name', 'SELECT body FROM corpus', '{$tiny$extra}')->>'model'});
}

# The perplexities of @texts under a model, as numbers (one query).
sub perplexities
{
	my ($name) = @_;
	my $list = join(', ', map { "'$_'" } @texts);
	my $out = $node->safe_psql('postgres',
		"SELECT array_to_string(rnnlm_perplexity('$name', ARRAY[$list]), ' ')");
	my @single = map {
		$node->safe_psql('postgres', "SELECT rnnlm_perplexity('$name', '$_')")
	} @texts;
	my @batch = split / /, $out;
	return [ @single, @batch ];
}

# Greedy generation with a fixed seed.
sub greedy
{
	my ($name, $prompt) = @_;
	return $node->safe_psql('postgres',
		"SELECT rnnlm_generate('$name', '$prompt', 25, 0.0, 0, 1.0, 7)");
}

# Compares two lists of numbers to a relative tolerance.
sub numbers_close
{
	my ($got, $want, $tol, $what) = @_;
	my $ok = @$got == @$want && @$got > 0;
	for my $i (0 .. $#$want)
	{
		last unless $ok;
		my ($g, $w) = ($got->[$i], $want->[$i]);
		$ok = defined $g && $g =~ /^[-+0-9.eE]+$/
		  && abs($g - $w) <= $tol * (abs($w) > 1 ? abs($w) : 1);
	}
	ok($ok, $what) or diag("got: @$got\nwant: @$want");
}

sub model_exists
{
	my ($name) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM rnnlm.model WHERE name = '$name'");
}

# Two committed models and what they compute.
is(train_tiny('a'), 'a', 'model a trained (word LSTM)');
is(train_tiny('b', '"cell": "gru", "tokenizer": "char", "seed": 5'), 'b',
	'model b trained (char GRU)');
my %ppl = (a => perplexities('a'), b => perplexities('b'));
my %gen = (a => greedy('a', 'the printer'), b => greedy('b', 'the p'));
my %md5 = map {
	$_ => $node->safe_psql('postgres',
		"SELECT md5(weights) || ' ' || revision FROM rnnlm.model WHERE name = '$_'")
} qw(a b);
cmp_ok(length($gen{a}), '>', 0, 'a generates text');
cmp_ok(length($gen{b}), '>', 0, 'b generates text');

# A session that trains model u inside a transaction and leaves it open.
my ($uout, $uerr) = ('', '');
my $uh = IPC::Run::start(
	[
		'psql', '-X', '-q', '-d', $node->connstr('postgres'),
		'-c', 'SET client_min_messages = warning',
		'-c', 'BEGIN',
		'-c', qq{SELECT rnnlm_train('u', 'SELECT body FROM corpus', '{$tiny}')},
		'-c', 'SELECT pg_sleep(600) /* uncommitted */'
	],
	'>', \$uout, '2>', \$uerr);
$node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE query LIKE '%pg_sleep(600) /* uncommitted */%' AND wait_event = 'PgSleep'
	   AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()})
  or die 'the uncommitted session did not park';
is(model_exists('u'), '0', 'the uncommitted model u is invisible to other sessions');

# A long training of model c in another session.
my ($cout, $cerr) = ('', '');
my $ch = IPC::Run::start(
	[
		'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c',
		q{SELECT rnnlm_train('c', 'SELECT body FROM long_corpus',
  '{"epochs": 10000, "hidden_size": 256, "embedding_dim": 64, "num_layers": 1, "tokenizer": "char"}')}
	],
	'>', \$cout, '2>', \$cerr);
$node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE query LIKE '%rnnlm_train(''c''%' AND state = 'active'
	   AND pid <> pg_backend_pid()
	   AND now() - query_start > interval '1 second'})
  or die 'the long training did not start';
my $pid = $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity
	 WHERE query LIKE '%rnnlm_train(''c''%' AND pid <> pg_backend_pid()});
like($pid, qr/^\d+$/, "the long training runs in backend $pid");

# SIGKILL: the postmaster treats it as a crash of shared memory users.
my $offset = -s $node->logfile;
ok(kill('KILL', $pid), 'SIGKILL sent to the training backend');
$ch->finish;
$uh->finish;
like($cerr, qr/server closed the connection unexpectedly|connection to server was lost|terminat/i,
	'the training session lost its connection');
like($uerr, qr/server closed the connection unexpectedly|connection to server was lost|terminat/i,
	'the uncommitted session was ended too');

$node->wait_for_log(qr/database system is ready to accept connections/, $offset);
$node->poll_query_until('postgres', 'SELECT true')
  or die 'the server does not accept connections after the crash';
ok($node->log_contains(qr/\(PID $pid\) was terminated by signal 9/, $offset),
	'the log shows the backend was terminated by signal 9');
ok($node->log_contains(qr/all server processes terminated; reinitializing/, $offset),
	'the log shows the crash-restart');
ok($node->log_contains(qr/database system was not properly shut down; automatic recovery in progress/, $offset),
	'the log shows crash recovery');

# What survived.
is(model_exists('c'), '0', 'the model being trained does not exist');
is(model_exists('u'), '0', 'the model of the uncommitted transaction does not exist');
is($node->safe_psql('postgres', 'SELECT string_agg(name, \',\' ORDER BY name) FROM rnnlm.models'),
	'a,b', 'rnnlm.models lists exactly a and b');
for my $m (qw(a b))
{
	is($node->safe_psql('postgres',
		"SELECT md5(weights) || ' ' || revision FROM rnnlm.model WHERE name = '$m'"),
		$md5{$m}, "$m: weights and revision unchanged");
	numbers_close(perplexities($m), $ppl{$m}, 1e-9, "$m: same perplexities after the crash");
	is(greedy($m, $m eq 'a' ? 'the printer' : 'the p'), $gen{$m}, "$m: same greedy text after the crash");
}
is($node->safe_psql('postgres', 'VACUUM rnnlm.model; SELECT count(*) FROM rnnlm.model'), '2',
	'VACUUM of rnnlm.model succeeds after recovery');

# Training still works, and names left free by the crash can be used.
is(train_tiny('c'), 'c', 'rnnlm_train works after the crash (model c)');
is(train_tiny('u', '"cell": "rnn"'), 'u', 'and model u can be trained now');
cmp_ok(
	$node->safe_psql('postgres', q{SELECT revision FROM rnnlm.model WHERE name = 'u'}),
	'>',
	$node->safe_psql('postgres', q{SELECT max(revision) FROM rnnlm.model WHERE name IN ('a', 'b')}),
	'new models get new revisions after recovery');
my $cppl = perplexities('c');
cmp_ok($cppl->[0], '>', 0, 'the new model c scores text');

# A model committed just before an immediate shutdown survives it.
is(train_tiny('d', '"cell": "gru", "seed": 11'), 'd', 'model d trained and committed');
my $dppl = perplexities('d');
my $dgen = greedy('d', 'the printer');
$node->safe_psql('postgres', q{SELECT rnnlm_drop('c')});
$offset = -s $node->logfile;
$node->stop('immediate');
$node->start;
ok($node->log_contains(qr/automatic recovery in progress/, $offset),
	'the restart after the immediate shutdown ran crash recovery');
is(model_exists('d'), '1', 'model d survives the immediate shutdown');
numbers_close(perplexities('d'), $dppl, 1e-9, 'd: same perplexities after the immediate shutdown');
is(greedy('d', 'the printer'), $dgen, 'd: same greedy text after the immediate shutdown');
is(model_exists('c'), '0', 'the drop committed before the shutdown stays done');
for my $m (qw(a b))
{
	numbers_close(perplexities($m), $ppl{$m}, 1e-9, "$m: still the same perplexities");
}
is(train_tiny('e'), 'e', 'rnnlm_train works after the immediate shutdown');

$node->stop;
done_testing();
