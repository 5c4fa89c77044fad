# Concurrency: sessions that train, replace, drop and score the same model at
# the same time.
#
#   1. Two trainings of one name without "replace": one wins, the other gets
#      42710 (at once, or after waiting for the winner's transaction); two with
#      "replace" both succeed, one after the other; "replace" racing rnnlm_drop.
#      Every time exactly the expected row is left, and it scores exactly like
#      a reference model trained alone with the same options.
#   2. pgbench: 8 clients score model 'm' for 30 s while another session
#      replaces it over and over: no client fails, every score is one that a
#      stored version gives, and the clients move on to the new versions.
#   3. Per-backend cache: a session that has the model cached sees a
#      replacement, a drop and a re-creation at its next statement.
#
# Overlaps are made certain, not hoped for: the racing trainings read their
# documents through a view that first takes a shared advisory lock, which the
# test holds exclusively; it waits (through pg_stat_activity) until both
# trainings wait for that lock, i.e. both are past the existence check, and
# only then releases it, so that both train and store at the same time.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $t_begin = time();
my $node = RnnlmTest::new_node('concurrency', conf => <<'CONF');
max_connections = 40
client_min_messages = warning
CONF

$node->safe_psql('postgres', q{
CREATE TABLE corpus (id serial PRIMARY KEY, body text);
INSERT INTO corpus (body)
  SELECT (ARRAY['the printer on floor three prints blank pages',
                'cannot log in to the vpn since this morning',
                'my printer says paper jam but there is no paper',
                'the laptop battery drains in an hour',
                'please reset my password for the mail server',
                'the projector in room four shows no signal'])[1 + i % 6] || ' ' || (i % 17)
    FROM generate_series(1, 300) i;
-- the same documents in the same order, once the gate (advisory lock 4242) is open
CREATE VIEW gated_corpus AS
  WITH gate AS MATERIALIZED (SELECT pg_catalog.pg_advisory_xact_lock_shared(4242))
  SELECT c.body FROM corpus c, gate ORDER BY c.id;
CREATE TABLE texts (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO texts VALUES
  (1, 'the printer prints blank pages'),
  (2, 'cannot reset my password'),
  (3, 'the projector shows no signal since this morning'),
  (4, 'paper jam on floor four'),
  (5, 'battery'),
  (6, 'zebra quartz xylophone');
});

my $fast_query = 'SELECT body FROM corpus ORDER BY id';
my $gated_query = 'SELECT body FROM gated_corpus';
my $probe      = 'the printer prints blank pages';
# the racing trainings train for longer (about a second), so that their
# training, not only their start, overlaps
my %race = (epochs => 20);

# Training options as JSON: a small character model (a fraction of a second).
sub opts
{
	my (%o) = @_;
	my %all = (
		epochs        => 4,
		hidden_size   => 48,
		embedding_dim => 16,
		num_layers    => 1,
		tokenizer     => 'char',
		%o);
	return '{'
	  . join(', ',
		map { my $v = $all{$_}; qq("$_": ) . ($v =~ /^(?:[0-9.]+|true|false)$/ ? $v : qq("$v")) }
		  sort keys %all)
	  . '}';
}

sub train_sql
{
	my ($name, $query, %o) = @_;
	return "SELECT rnnlm_train('$name', '$query', '" . opts(%o) . "')";
}

# ---------------------------------------------------------------------------
# psql sessions driven from here: a statement can be sent and its result
# collected later, so several sessions can have statements in flight.

sub session
{
	my ($name) = @_;
	my $s = { name => $name, in => '', out => '', err => '', n => 0 };
	$s->{h} = IPC::Run::start(
		[
			'psql', '-X', '-A', '-t', '-q', '-v', 'VERBOSITY=verbose',
			'-d', $node->connstr('postgres')
		],
		'<', \$s->{in}, '>', \$s->{out}, '2>', \$s->{err});
	$s->{pid} = sq($s, 'SELECT pg_backend_pid()');
	die "session $name did not connect" unless $s->{pid} =~ /^\d+$/;
	return $s;
}

# Sends a statement (or several, in psql syntax) without waiting.
sub send_sql
{
	my ($s, $sql) = @_;
	my $mark = "__done_" . ++$s->{n} . "__";
	$s->{mark} = $mark;
	$s->{out}  = $s->{err} = '';
	$s->{in} .= "$sql\n;\n\\echo $mark\n\\warn $mark\n";
	$s->{h}->pump_nb;
	return;
}

# Whether what send_sql sent has finished.
sub sql_done
{
	my ($s) = @_;
	die "psql of session $s->{name} is gone: $s->{err}" unless $s->{h}->pumpable;
	$s->{h}->pump_nb;
	return $s->{out} =~ /^\Q$s->{mark}\E$/m && $s->{err} =~ /^\Q$s->{mark}\E$/m;
}

# Waits for what send_sql sent; returns (stdout, stderr), both trimmed.
sub wait_sql
{
	my ($s, $timeout) = @_;
	my $end = time() + ($timeout // 120);
	until (sql_done($s))
	{
		die "session $s->{name}: no result after " . ($timeout // 120) . " s" if time() > $end;
		usleep(10_000);
	}
	my ($out, $err) = ($s->{out}, $s->{err});
	s/^\Q$s->{mark}\E\n//m, s/\s+$// for $out, $err;
	return ($out, $err);
}

# Runs a statement and returns (stdout, stderr).
sub q_sql
{
	my ($s, $sql) = @_;
	send_sql($s, $sql);
	return wait_sql($s);
}

# Runs a statement that must not fail and returns its output.
sub sq
{
	my ($s, $sql) = @_;
	my ($out, $err) = q_sql($s, $sql);
	die "session $s->{name}: $sql\nfailed: $err" if $err ne '';
	return $out;
}

sub close_session
{
	my ($s) = @_;
	$s->{in} .= "\\q\n";
	$s->{h}->finish;
	return;
}

my $mon = session('monitor');

# Polls a boolean query (in the monitor session) until true; false after $secs.
sub poll_until
{
	my ($sql, $secs) = @_;
	my $end = time() + ($secs // 60);
	while (time() < $end)
	{
		return 1 if sq($mon, $sql) eq 't';
		usleep(50_000);
	}
	diag("gave up waiting for: $sql\n" . sq($mon,
		  'SELECT string_agg(pid || \' \' || state || \' \' || coalesce(wait_event_type, \'-\') || \' \' || coalesce(wait_event, \'-\') || \' \' || left(query, 60), E\'\n\') FROM pg_stat_activity WHERE backend_type = \'client backend\''));
	return 0;
}

# The gate: while closed, statements reading gated_corpus wait at it.
sub gate_close
{
	sq($mon, 'SELECT pg_advisory_lock(4242)');
	return;
}

sub gate_open
{
	die 'the gate was not closed' unless sq($mon, 'SELECT pg_advisory_unlock(4242)') eq 't';
	return;
}

# The sessions' statements wait at the gate.
sub at_gate
{
	my @s = @_;
	return poll_until("SELECT count(*) = " . scalar(@s) . " FROM pg_stat_activity WHERE pid IN ("
		  . join(', ', map { $_->{pid} } @s) . ") "
		  . "AND state = 'active' AND wait_event_type = 'Lock' AND wait_event = 'advisory'");
}

# Notes (for the log) what the sessions' backends are doing right now.
sub note_running
{
	my @s = @_;
	note 'just after opening the gate: ' . sq($mon, "SELECT string_agg(pid || ' ' || state || ' ' "
		  . "|| coalesce(wait_event, 'on CPU'), ', ') FROM pg_stat_activity WHERE pid IN ("
		  . join(', ', map { $_->{pid} } @s) . ')');
	return;
}

# The session's backend waits for a lock (another transaction's row or insert).
sub waits_for_lock
{
	my ($s) = @_;
	return poll_until("SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $s->{pid} "
		  . "AND state = 'active' AND wait_event_type = 'Lock'");
}

sub rows_named
{
	my ($name) = @_;
	return sq($mon, "SELECT count(*) FROM rnnlm.model WHERE name = '$name'");
}

sub stored_seed
{
	my ($name) = @_;
	return sq($mon, "SELECT options->>'seed' FROM rnnlm.model WHERE name = '$name'");
}

sub score
{
	my ($name, $text) = @_;
	return $node->safe_psql('postgres', "SELECT rnnlm_perplexity('$name', '" . ($text // $probe) . "')");
}

# The probe's perplexity under a model trained alone, now, with these options.
my %ref_cache;
sub reference_score
{
	my (%o) = @_;
	my $key = opts(%o);
	return $ref_cache{$key} //= do {
		my $name = 'ref_' . (scalar(keys %ref_cache) + 1);
		$node->safe_psql('postgres', train_sql($name, $fast_query, %o));
		score($name);
	};
}

my ($sa, $sb) = (session('a'), session('b'));

# ---------------------------------------------------------------------------
# 1. Training the same name at the same time.

# Without replace, both past the existence check: one stores, the other's
# INSERT ... ON CONFLICT finds the row and fails with duplicate_object.
{
	gate_close();
	send_sql($sa, train_sql('dup', $gated_query, %race, seed => 1));
	send_sql($sb, train_sql('dup', $gated_query, %race, seed => 2));
	ok(at_gate($sa, $sb), 'two trainings of "dup" run at the same time, both past the existence check');
	gate_open();
	note_running($sa, $sb);
	my @r = ([ 1, wait_sql($sa) ], [ 2, wait_sql($sb) ]);
	my @won  = grep { $_->[2] eq '' } @r;
	my @lost = grep { $_->[2] ne '' } @r;
	is(scalar @won, 1, 'exactly one of two racing trainings without replace succeeds');
	if (@won == 1 && @lost == 1)
	{
		like($won[0][1], qr/"model": "dup"/, 'the winner returns its summary');
		like($lost[0][2], qr/ERROR:  42710: rnnlm model "dup" already exists/,
			'the loser gets 42710 duplicate_object "already exists"');
		like($lost[0][2], qr/DETAIL:  Another session stored it while this one was training/,
			'the loser found the row when storing, after training');
		is(rows_named('dup'), '1', 'exactly one row "dup" is left');
		is(stored_seed('dup'), $won[0][0], "the row is the winner's model");
		is(score('dup'), reference_score(%race, seed => $won[0][0]),
			"it loads and scores exactly like the winner's model trained alone");
	}
	else
	{
		fail('racing trainings without replace: ' . join(' | ', map { $_->[2] } @r)) for 1 .. 6;
	}
}

# Without replace, the winner's transaction still open: the other training
# waits for it at its INSERT, then fails (commit) or stores its own (rollback).
for my $end ('COMMIT', 'ROLLBACK')
{
	my $name = lc "dup_$end";
	sq($sa, 'BEGIN');
	like(sq($sa, train_sql($name, $fast_query, seed => 3)), qr/"model": "$name"/,
		"$end case: the first training stores its row in an open transaction");
	send_sql($sb, train_sql($name, $fast_query, seed => 4));
	ok(waits_for_lock($sb), "$end case: a second training of the same name waits for that transaction");
	sq($sa, $end);
	my ($out, $err) = wait_sql($sb);
	if ($end eq 'COMMIT')
	{
		like($err, qr/ERROR:  42710: rnnlm model "$name" already exists/,
			'after the COMMIT the waiting training fails with 42710');
		is(stored_seed($name), '3', "the committed model is the one left");
	}
	else
	{
		is($err, '', 'after the ROLLBACK the waiting training succeeds');
		is(stored_seed($name), '4', "and its model is the one stored");
	}
	is(rows_named($name), '1', "$end case: exactly one row");
	is(score($name), reference_score(seed => stored_seed($name)), "$end case: the model scores correctly");
}

# With replace, racing: both succeed, one after the other; one valid row left.
{
	$node->safe_psql('postgres', train_sql('rep', $fast_query, seed => 10));
	my $v0 = sq($mon, "SELECT revision FROM rnnlm.model WHERE name = 'rep'");
	gate_close();
	send_sql($sa, train_sql('rep', $gated_query, %race, seed => 11, replace => 'true'));
	send_sql($sb, train_sql('rep', $gated_query, %race, seed => 12, replace => 'true'));
	ok(at_gate($sa, $sb), 'two replacing trainings of "rep" run at the same time');
	gate_open();
	note_running($sa, $sb);
	my ($ao, $ae) = wait_sql($sa);
	my ($bo, $be) = wait_sql($sb);
	is($ae . $be, '', 'both replacing trainings succeed');
	like($ao . $bo, qr/"model": "rep".*"model": "rep"/s, 'both return their summaries');
	is(rows_named('rep'), '1', 'exactly one row "rep" is left');
	my $seed = stored_seed('rep');
	like($seed, qr/^1[12]$/, "the row is one of the two new models (seed $seed)");
	ok(sq($mon, "SELECT revision > $v0 FROM rnnlm.model WHERE name = 'rep'") eq 't', 'with a new revision');
	is(score('rep'), reference_score(%race, seed => $seed), 'it scores exactly like that model trained alone');
}

# With replace, one transaction still open: the other waits for its row lock
# and then replaces the committed model.
{
	sq($sa, 'BEGIN');
	sq($sa, train_sql('rep', $fast_query, seed => 13, replace => 'true'));
	my $va = sq($sa, "SELECT revision FROM rnnlm.model WHERE name = 'rep'");
	send_sql($sb, train_sql('rep', $fast_query, seed => 14, replace => 'true'));
	ok(waits_for_lock($sb), 'a replacing training waits for the row another one replaced and has not committed');
	sq($sa, 'COMMIT');
	my ($out, $err) = wait_sql($sb);
	is($err, '', 'and succeeds after the COMMIT');
	is(rows_named('rep'), '1', 'one row "rep"');
	is(stored_seed('rep'), '14', 'holding the model stored last');
	ok(sq($mon, "SELECT revision > $va FROM rnnlm.model WHERE name = 'rep'") eq 't',
		'under a revision newer than the first replacement');
	is(score('rep'), reference_score(seed => 14), 'which scores correctly');
}

# Replace racing rnnlm_drop.
{
	# the drop lands while the replacing training reads its documents: the
	# training then stores its model as a new row
	$node->safe_psql('postgres', train_sql('rd', $fast_query, seed => 20));
	gate_close();
	send_sql($sa, train_sql('rd', $gated_query, seed => 21, replace => 'true'));
	ok(at_gate($sa), 'a replacing training of "rd" is running');
	is(sq($sb, "SELECT rnnlm_drop('rd')"), 't', 'rnnlm_drop meanwhile succeeds without waiting');
	is(rows_named('rd'), '0', 'the row is gone');
	gate_open();
	my ($out, $err) = wait_sql($sa);
	is($err, '', 'the replacing training still succeeds');
	is(rows_named('rd'), '1', 'and leaves one row');
	is(stored_seed('rd'), '21', 'with its model');
	is(score('rd'), reference_score(seed => 21), 'which scores correctly');

	# the replacement is stored but not committed: the drop waits, then
	# deletes the new row
	sq($sa, 'BEGIN');
	sq($sa, train_sql('rd', $fast_query, seed => 22, replace => 'true'));
	send_sql($sb, "SELECT rnnlm_drop('rd')");
	ok(waits_for_lock($sb), 'rnnlm_drop waits for an uncommitted replacement');
	sq($sa, 'COMMIT');
	($out, $err) = wait_sql($sb);
	is("$out$err", 't', 'then drops the model');
	is(rows_named('rd'), '0', 'no row is left');
	my ($ret, $o2, $e2) = $node->psql('postgres', "SELECT rnnlm_perplexity('rd', '$probe')",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($e2, qr/42704: rnnlm model "rd" does not exist/, 'scoring the dropped model is 42704');

	# the drop is not committed yet: the replacing training waits at its
	# INSERT, then stores its model as a new row
	$node->safe_psql('postgres', train_sql('rd', $fast_query, seed => 23));
	sq($sb, 'BEGIN');
	is(sq($sb, "SELECT rnnlm_drop('rd')"), 't', 'a drop in an open transaction');
	send_sql($sa, train_sql('rd', $fast_query, seed => 24, replace => 'true'));
	ok(waits_for_lock($sa), 'a replacing training waits for the uncommitted drop');
	sq($sb, 'COMMIT');
	($out, $err) = wait_sql($sa);
	is($err, '', 'and succeeds after it commits');
	is(rows_named('rd'), '1', 'one row "rd"');
	is(stored_seed('rd'), '24', 'holding the new model');
	is(score('rd'), reference_score(seed => 24), 'which scores correctly');
}

# ---------------------------------------------------------------------------
# 2. pgbench scoring while the model is replaced again and again.
{
	$node->safe_psql('postgres', q{
CREATE TABLE seen (r int, ppl float8);
CREATE TABLE expected (revision bigint, r int, ppl float8);
});
	my @cells = ('lstm', 'gru', 'rnn');
	my %m_opts = (epochs => 6, hidden_size => 64, embedding_dim => 16);
	# records each text's perplexity under the revision of 'm' just stored
	# (this session is the only one that changes 'm')
	my $record = q{INSERT INTO expected
  SELECT m.revision, t.id, rnnlm_perplexity('m', t.body)
    FROM texts t, rnnlm.model m WHERE m.name = 'm'};
	my $r = session('replacer');
	sq($r, train_sql('m', $fast_query, %m_opts, seed => 100, cell => 'lstm'));
	sq($r, $record);
	my $s = session('scorer');
	my $first = sq($s, "SELECT rnnlm_perplexity('m', '$probe')");

	my $script = $node->basedir . '/score.sql';
	PostgreSQL::Test::Utils::append_to_file($script, <<'SQL');
\set r random(1, 6)
INSERT INTO seen (r, ppl) SELECT id, rnnlm_perplexity('m', body) FROM texts WHERE id = :r;
SQL
	my ($pb_out, $pb_err) = ('', '');
	my $t0 = time();
	my $pb = IPC::Run::start(
		[
			'pgbench', '-n', '-M', 'prepared', '-c', '8', '-j', '2', '-T', '30',
			'-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'
		],
		'>', \$pb_out, '2>', \$pb_err);

	my ($k, @failed) = (0);
	while (time() - $t0 < 24 && $pb->pumpable)
	{
		$k++;
		my ($out, $err) = q_sql($r,
			train_sql('m', $fast_query, %m_opts, seed => 100 + $k, cell => $cells[ $k % 3 ],
				replace => 'true'));
		push @failed, $err if $err ne '';
		sq($r, $record);
		$pb->pump_nb;
	}
	$pb->finish;
	my $pb_status = $? >> 8;
	my $secs = time() - $t0;
	note "pgbench stdout:\n$pb_out\npgbench stderr:\n$pb_err";

	is($pb_status, 0, 'pgbench exits with status 0');
	unlike($pb_err, qr/aborted|ERROR/, 'no pgbench client got an error');
	my ($tx) = $pb_out =~ /number of transactions actually processed: (\d+)/;
	cmp_ok($tx // 0, '>=', 300, 'pgbench ran at least 300 transactions (' . ($tx // 'none') . ')');
	if ($pb_out =~ /number of failed transactions: (\d+)/)
	{
		is($1, '0', 'pgbench reports no failed transactions');
	}
	is(scalar(@failed), 0, "all $k replacements succeeded") or diag(join "\n", @failed);
	cmp_ok($k, '>=', 3, "several replacements happened during the run ($k in " . sprintf('%.0f', $secs) . ' s)');
	cmp_ok(sq($mon, 'SELECT count(*) FROM seen'), '>=', $tx // 1e9, 'every pgbench transaction recorded a score');
	is(sq($mon, q{SELECT count(*) FROM seen s
		 WHERE NOT EXISTS (SELECT 1 FROM expected e WHERE e.r = s.r AND e.ppl = s.ppl)}), '0',
		'every score pgbench saw is what some stored revision of "m" gives');
	my $versions_seen = sq($mon, q{SELECT count(DISTINCT e.revision) FROM seen s JOIN expected e USING (r, ppl)});
	cmp_ok($versions_seen, '>=', 3, "the clients moved on to new versions ($versions_seen versions seen)");

	my $final = sq($mon, q{SELECT ppl FROM expected
		 WHERE r = 1 AND revision = (SELECT max(revision) FROM expected)});
	is(sq($mon, q{SELECT max(revision) FROM expected}), sq($mon, q{SELECT revision FROM rnnlm.model WHERE name = 'm'}),
		'the last recorded revision is the stored one');
	is(sq($s, "SELECT rnnlm_perplexity('m', '$probe')"), $final,
		'after the last replacement, a new statement in a session that scored the first model gets the final score');
	is(score('m'), $final, 'as does a brand new session');
	$node->safe_psql('postgres', q{SELECT rnnlm_import('m_copy', rnnlm_export('m'))});
	is(score('m_copy'), $final, 'and a copy of the final model');
	is(reference_score(%m_opts, seed => 100 + $k, cell => $cells[ $k % 3 ]), $final,
		'and the final model trained alone with the same options');
	isnt($final, $first, 'which differs from the first model');
	close_session($_) for $r, $s;
}

# ---------------------------------------------------------------------------
# 3. One session's cache against another session's replace and drop.
{
	my ($s1, $s2) = ($sa, $sb);
	my $sc = "SELECT rnnlm_perplexity('c', '$probe')";
	$node->safe_psql('postgres', train_sql('c', $fast_query, seed => 31));
	my $p31 = reference_score(seed => 31);
	my $p32 = reference_score(seed => 32);
	my $p33 = reference_score(seed => 33);
	my $p34 = reference_score(seed => 34);
	ok(scalar(keys %{ { map { $_ => 1 } $p31, $p32, $p33, $p34 } }) == 4, 'the four seeds give four different models');

	is(sq($s1, $sc), $p31, 'S1 scores with the model (now cached)');
	is(sq($s1, $sc), $p31, 'and again from its cache');
	sq($s2, train_sql('c', $fast_query, seed => 32, replace => 'true'));
	is(sq($s1, $sc), $p32, "S1's next statement uses the model S2 stored");

	# in one transaction, each READ COMMITTED statement sees the latest model
	sq($s1, 'BEGIN');
	is(sq($s1, $sc), $p32, 'in a transaction S1 scores with the current model');
	sq($s2, train_sql('c', $fast_query, seed => 33, replace => 'true'));
	is(sq($s1, $sc), $p33, "and its next statement uses S2's replacement");
	sq($s1, 'COMMIT');

	# under REPEATABLE READ the transaction keeps its snapshot's model
	sq($s1, 'BEGIN ISOLATION LEVEL REPEATABLE READ');
	is(sq($s1, $sc), $p33, 'a REPEATABLE READ transaction scores with the current model');
	sq($s2, train_sql('c', $fast_query, seed => 34, replace => 'true'));
	is(sq($s1, $sc), $p33, 'and keeps its snapshot\'s model after a replacement');
	sq($s1, 'COMMIT');
	is(sq($s1, $sc), $p34, 'the next transaction uses the new model');

	# a PL/pgSQL function keeps its expression (and the function's cache)
	# for the whole transaction
	sq($s1, q{CREATE FUNCTION score_c(t text) RETURNS float8 LANGUAGE plpgsql
		AS $$ BEGIN RETURN rnnlm_perplexity('c', t); END $$});
	my $fc = "SELECT score_c('$probe')";
	sq($s1, 'BEGIN');
	is(sq($s1, $fc), $p34, 'through a PL/pgSQL function, in a transaction');
	sq($s2, train_sql('c', $fast_query, seed => 31, replace => 'true'));
	is(sq($s1, $fc), $p31, 'the next statement of the transaction sees the replacement');
	sq($s1, 'COMMIT');

	# several statements in one query string (one implicit transaction)
	gate_close();
	send_sql($s1, "$sc \\; SELECT pg_advisory_xact_lock_shared(4242) \\; $sc");
	ok(at_gate($s1), 'S1 runs a query string of three statements');
	sq($s2, train_sql('c', $fast_query, seed => 33, replace => 'true'));
	gate_open();
	my ($out, $err) = wait_sql($s1);
	is($err, '', 'without an error');
	is($out, "$p31\n\n$p33", "the query string's last statement sees the replacement made during the second");

	# The same through the PL/pgSQL function, whose expression (and so its
	# per-call-site cache) lives for the whole transaction: the third statement
	# must still notice a replacement, or a drop, made during the second.
	gate_close();
	send_sql($s1, "$fc \\; SELECT pg_advisory_xact_lock_shared(4242) \\; $fc");
	ok(at_gate($s1), 'S1 runs a query string of three statements, through the PL/pgSQL function');
	sq($s2, train_sql('c', $fast_query, seed => 32, replace => 'true'));
	gate_open();
	($out, $err) = wait_sql($s1);
	is($err, '', 'without an error');
	is($out, "$p33\n\n$p32",
		"the third statement of the query string, through PL/pgSQL, sees the replacement made during the second");

	gate_close();
	send_sql($s1, "$fc \\; SELECT pg_advisory_xact_lock_shared(4242) \\; $fc");
	ok(at_gate($s1), 'again, with a drop during the second statement');
	is(sq($s2, "SELECT rnnlm_drop('c')"), 't', 'S2 drops the model');
	gate_open();
	($out, $err) = wait_sql($s1);
	like($err, qr/42704: rnnlm model "c" does not exist/,
		"the third statement of the query string, through PL/pgSQL, finds the model dropped during the second")
	  or diag("stdout: $out");
	sq($s2, train_sql('c', $fast_query, seed => 32));

	# its own change, rolled back by a subtransaction within one statement:
	# the same call site must not go on with the rolled-back model
	my $fn = <<'SQL';
CREATE FUNCTION rolled_back_replacement() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p1 float8; p2 float8; p3 float8;
BEGIN
    p1 := score_c('PROBE');
    BEGIN
        PERFORM rnnlm_train('c', 'QUERY', 'OPTS');
        p2 := score_c('PROBE');
        RAISE EXCEPTION 'undo';
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
    p3 := score_c('PROBE');
    RETURN p1 || ' ' || p2 || ' ' || p3;
END
$$
SQL
	my $o33 = opts(seed => 33, replace => 'true');
	$fn =~ s/PROBE/$probe/g;
	$fn =~ s/QUERY/$fast_query/g;
	$fn =~ s/OPTS/$o33/g;
	sq($s1, $fn);
	is(sq($s1, 'SELECT rolled_back_replacement()'), "$p32 $p33 $p32",
		'after a subtransaction that replaced the model rolls back, the same call site scores with the model before');
	is(stored_seed('c'), '32', 'the stored model is unchanged');
	is(sq($s1, $fc), $p32, "and the next statement scores with it");

	# its own change, then rolled back
	sq($s1, 'BEGIN');
	sq($s1, train_sql('c', $fast_query, seed => 33, replace => 'true'));
	is(sq($s1, $sc), $p33, 'S1 scores with the model it replaced in its open transaction');
	sq($s1, 'ROLLBACK');
	is(sq($s1, $sc), $p32, 'and with the previous model after rolling back');

	# dropped by S2
	is(sq($s2, "SELECT rnnlm_drop('c')"), 't', 'S2 drops the model');
	($out, $err) = q_sql($s1, $sc);
	like($err, qr/ERROR:  42704: rnnlm model "c" does not exist/,
		"S1's next statement gets 42704 does not exist");
	is($out, '', 'and no stale score');
	($out, $err) = q_sql($s1, $fc);
	like($err, qr/42704: rnnlm model "c" does not exist/, 'through the PL/pgSQL function too');
	is(sq($s1, 'SELECT 1'), '1', 'S1 is still connected');
	($out, $err) = q_sql($s1, $sc);
	like($err, qr/42704/, 'and still gets 42704 on the next try');

	# re-created by S2 under the same name
	sq($s2, train_sql('c', $fast_query, seed => 34));
	is(sq($s1, $sc), $p34, 'after S2 trains "c" anew, S1 scores with the new model');
	is(sq($s1, $fc), $p34, 'also through the PL/pgSQL function');
}

close_session($_) for $sa, $sb, $mon;

ok(!$node->log_contains('terminated by signal'), 'no backend crashed');
ok(!$node->log_contains('has invalid weights'), 'no backend read invalid weights');
note sprintf('100_concurrency.t took %.1f s', time() - $t_begin);
$node->stop;
done_testing();
