# Training jobs in background workers (rnnlm_train_async and friends):
#   - a job runs to the end as the role that submitted it (its privileges,
#     its model), and a training query it may not run fails the job (42501);
#   - other sessions see its progress; its worker holds no snapshot while it
#     trains (backend_xmin stays NULL);
#   - rnnlm_wait with a timeout, rnnlm_training_history of a running job,
#     rnnlm_forget of a running and of a finished job;
#   - other roles can neither see, cancel, wait on nor forget a job; a
#     superuser sees every job;
#   - rnnlm_cancel stops a running job within a second, without a model;
#   - a running job is not taken for interrupted (and resumed a second
#     time) by a transaction whose view of pg_stat_activity predates its
#     worker, nor by a NOINHERIT member of the owning role;
#   - a worker killed with SIGKILL (a crash) or stopped by a shutdown leaves
#     an 'interrupted' job; rnnlm_resume continues it from its checkpoint to
#     the very weights an uninterrupted run ends with;
#   - fair slots: a role beyond rnnlm.max_jobs_per_role, or a job when no
#     background worker slot is free, waits as 'queued' with the reason in
#     rnnlm.jobs and starts when a slot frees; a role without LOGIN (42501);
#   - no role can squat a job's liveness lock (the advisory locks any role
#     can take are not it), forge or change a job row (42501), or lower
#     checkpoint_minutes below rnnlm.min_checkpoint_minutes (22023);
#   - a role with default_transaction_read_only on gets a failed job with
#     the error and its SQLSTATE recorded (25006);
#   - a submission rolled back leaves no job, no model and no worker, and a
#     submission in an open transaction starts only when it commits.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

# (the resume test checkpoints every 0.3 s; the roles here run more jobs at
# once than the default cap, which section 6 tests)
my $node = RnnlmTest::new_node('jobs', conf => <<'CONF');
restart_after_crash = on
rnnlm.min_checkpoint_minutes = 0
rnnlm.max_jobs_per_role = 10
CONF

# corpus: a few thousand short lines (an epoch of the small model below takes
# a fraction of a second); big: five times as many (an epoch takes a second or
# two); secret: a table alice may not read.
$node->safe_psql('postgres', q{
CREATE TABLE corpus AS
  SELECT 'line ' || i || ' of a corpus about printers, tickets and logs' AS body
    FROM generate_series(1, 2000) i;
CREATE TABLE big AS
  SELECT 'line ' || i || ' of a corpus about printers, tickets and logs' AS body
    FROM generate_series(1, 10000) i;
CREATE TABLE secret AS SELECT body FROM corpus;
CREATE TABLE shared AS SELECT i, 'row ' || i || ' of a table with row-level security' AS body
  FROM generate_series(1, 400) i;
ALTER TABLE shared ENABLE ROW LEVEL SECURITY;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE nologin_role NOLOGIN;
CREATE ROLE carol LOGIN NOINHERIT;
GRANT alice TO carol;
GRANT SELECT ON corpus, big TO alice, bob, nologin_role;
GRANT SELECT ON shared TO alice;
CREATE POLICY alices_rows ON shared FOR SELECT TO alice USING (i <= 150);
});

my $small = '"tokenizer": "char", "hidden_size": 32, "embedding_dim": 8, "num_layers": 1';

# Runs SQL (as the superuser, or as => ROLE); returns (stdout, stderr) with
# errors in verbose form ("ERROR:  SQLSTATE: message").
sub sql
{
	my ($sql, %p) = @_;
	my @extra = $p{as} ? ('-U', $p{as}) : ();
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => \@extra);
	return ($out, $err);
}

# Like safe_psql, optionally as another role.
sub q1
{
	my ($sql, %p) = @_;
	return $node->safe_psql('postgres', $sql,
		extra_params => [ $p{as} ? ('-U', $p{as}) : () ]);
}

# Submits a job; returns its id.
sub submit
{
	my ($model, $query, $options, %p) = @_;
	return q1("SELECT rnnlm_train_async('$model', '$query', '{$options}')", %p);
}

# Polls a query (as the superuser) until it returns 't'; false after $secs seconds.
sub wait_for
{
	my ($sql, $secs) = @_;
	my $t0 = time();
	while (time() - $t0 < $secs)
	{
		my ($ret, $out) = $node->psql('postgres', $sql);
		return 1 if $ret == 0 && $out eq 't';
		usleep(50_000);
	}
	diag("gave up after $secs s waiting for: $sql");
	return 0;
}

# The number of rnnlm training job backends.
sub workers
{
	return q1("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'rnnlm training job'");
}

# Waits until job $id has recorded at least $epoch finished epochs while running.
sub wait_epoch
{
	my ($id, $epoch, $secs) = @_;
	return wait_for("SELECT state = 'running' AND epoch >= $epoch FROM rnnlm.jobs WHERE id = $id",
		$secs // 60);
}

# ---------- 1. a job runs to the end as its owner ----------

my $sync_keys = q1(qq{
SET client_min_messages = warning;
SELECT string_agg(k, ',' ORDER BY k)
  FROM jsonb_object_keys(rnnlm_train('sync', 'SELECT body FROM corpus', '{$small, "epochs": 1}')) k});

my $job1 = submit('alices', 'SELECT body FROM corpus', qq{$small, "epochs": 2}, as => 'alice');
like($job1, qr/^\d+$/, 'rnnlm_train_async returns a job id');
my ($summary, $err) = sql("SELECT rnnlm_wait($job1)", as => 'alice');
is($err, '', 'rnnlm_wait on a successful job raises nothing');
like($summary, qr/"model": "alices"/, 'rnnlm_wait returns the summary of the job');
is(q1(qq{SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(rnnlm_wait($job1)) k},
		as => 'alice'),
	$sync_keys, 'the summary has the keys rnnlm_train returns');
is(q1("SELECT state || ' ' || epoch || '/' || epochs FROM rnnlm.jobs WHERE id = $job1", as => 'alice'),
	'succeeded 2/2', 'rnnlm.jobs shows the job succeeded after its 2 epochs');
is(q1("SELECT owner FROM rnnlm.jobs WHERE id = $job1", as => 'alice'), 'alice',
	'the job belongs to the submitting role');
is(q1("SELECT owner FROM rnnlm.models WHERE name = 'alices'"), 'alice',
	'the model belongs to the submitting role');
cmp_ok(q1("SELECT rnnlm_perplexity('alices', 'line 7 of a corpus about printers')", as => 'alice'),
	'>', 1, 'rnnlm_perplexity works on the model the job stored');
is(q1("SELECT finished_at >= started_at AND started_at >= submitted_at AND checkpointed_at IS NOT NULL"
	  . " FROM rnnlm.jobs WHERE id = $job1"),
	't', 'the job records when it was submitted, started, checkpointed and finished');
is(q1("SELECT count(*) FROM rnnlm_training_history(${job1}::bigint)"), '2',
	'rnnlm_training_history(job) lists both epochs');

# the training query runs with the owner's privileges
my $job_secret = submit('secrets', 'SELECT body FROM secret', qq{$small, "epochs": 1}, as => 'alice');
(undef, $err) = sql("SELECT rnnlm_wait($job_secret)", as => 'alice');
like($err, qr/ERROR:  42501: .*permission denied for table secret/,
	'rnnlm_wait raises 42501 for a job whose query the owner may not run');
is(q1("SELECT state || ': ' || error FROM rnnlm.jobs WHERE id = $job_secret", as => 'alice'),
	'failed: permission denied for table secret', 'rnnlm.jobs shows the job failed, and why');
is(q1("SELECT count(*) FROM rnnlm.model WHERE name = 'secrets'"), '0', 'and no model was stored');
my $job_rls = submit('rls', 'SELECT body FROM shared', qq{$small, "epochs": 1}, as => 'alice');
is(q1("SELECT rnnlm_wait($job_rls)->>'documents'", as => 'alice'), '150',
	"the training query sees only the rows the owner's row-level security policy lets it see");

# ---------- 2, 8, 5, 3: a long job, watched, then cancelled ----------

my $long = submit('long', 'SELECT body FROM big', qq{$small, "epochs": 1000}, as => 'alice');
ok(wait_epoch($long, 1), 'the long job starts training');

# 2. progress seen from other sessions, and no snapshot held while training
{
	my $first = q1("SELECT epoch || ',' || step FROM rnnlm.jobs WHERE id = $long", as => 'alice');
	my ($second, $xmins, $running) = ($first, '', 1);
	my $t0 = time();
	while (time() - $t0 < 30)
	{
		# each q1 is a fresh connection
		my $row = q1("SELECT j.state, j.epoch || ',' || j.step, coalesce(a.backend_xmin::text, 'null')"
			  . " FROM rnnlm.jobs j JOIN pg_stat_activity a ON a.pid = j.worker_pid WHERE j.id = $long");
		my ($state, $progress, $xmin) = split /\|/, $row;
		$running &&= $state eq 'running';
		$xmins .= "$xmin ";
		$second = $progress;
		last if $second ne $first && length($xmins) > 40;
		usleep(100_000);
	}
	ok($running, 'the job stays running while it is observed');
	isnt($second, $first, "another session sees the progress change ($first, then $second)");
	like($xmins, qr/^(null )+$/, 'the worker holds no snapshot while it trains (backend_xmin is NULL)')
	  or diag("backend_xmin samples: $xmins");
	is(q1("SELECT backend_xid IS NULL FROM pg_stat_activity a JOIN rnnlm.jobs j ON a.pid = j.worker_pid"
		  . " WHERE j.id = $long"), 't', 'nor a transaction id');
	my ($tps, $eta) = split /\|/,
	  q1("SELECT tokens_per_second > 0, eta > now() FROM rnnlm.jobs WHERE id = $long");
	is("$tps $eta", 't t', 'the job reports its speed and an ETA in the future');
	is(q1("SELECT fraction_done > 0 AND fraction_done < 1, time_remaining > '0'::interval,"
		  . " abs(extract(epoch FROM eta - now() - time_remaining)) < 5 FROM rnnlm.jobs WHERE id = $long"),
		't|t|t', 'and how far it is (fraction_done) and the time it has left (time_remaining)');
}

# 8. rnnlm_wait with a timeout, history while it runs, rnnlm_forget
{
	my $t0 = time();
	my ($out, $err) = sql("SELECT rnnlm_wait($long, '100 ms') IS NULL", as => 'alice');
	my $secs = time() - $t0;
	is("$out$err", 't', 'rnnlm_wait with a timeout returns NULL while the job runs');
	cmp_ok($secs, '<', 2, sprintf('after about the timeout (%.3f s)', $secs));
	ok(wait_epoch($long, 2), 'the long job reaches epoch 2');
	cmp_ok(q1("SELECT count(*) FROM rnnlm_training_history(${long}::bigint)", as => 'alice'),
		'>=', 1, 'rnnlm_training_history shows the finished epochs of a running job');
	is(q1("SELECT bool_and(train_loss > 0 AND seconds > 0 AND learning_rate > 0)"
		  . " FROM rnnlm_training_history(${long}::bigint)", as => 'alice'),
		't', 'with losses, seconds and learning rates');
	is(q1("SELECT rnnlm_forget(987654321)", as => 'alice'), 'f', 'rnnlm_forget of an unknown job is false');
	(undef, $err) = sql("SELECT rnnlm_forget($long)", as => 'alice');
	like($err, qr/ERROR:  55006: rnnlm job $long is running/, 'rnnlm_forget of a running job: 55006');
	is(q1("SELECT rnnlm_forget($job_secret)", as => 'alice'), 't', 'rnnlm_forget of a finished job is true');
	is(q1("SELECT count(*) FROM rnnlm.job WHERE id = $job_secret"), '0',
		'and the job is gone from the table');
	is(q1("SELECT count(*) FROM rnnlm.jobs WHERE id = $job_secret", as => 'alice'), '0',
		'and from rnnlm.jobs');
	is(q1("SELECT rnnlm_forget($job_secret)", as => 'alice'), 'f', 'forgetting it again is false');
}

# 5. other roles: nothing to see, cancel, wait on or forget
{
	is(q1("SELECT count(*) FROM rnnlm.jobs WHERE id IN ($long, $job1)", as => 'bob'), '0',
		"another role does not see the jobs in rnnlm.jobs");
	is(q1("SELECT count(*) FROM rnnlm.job WHERE id IN ($long, $job1)", as => 'bob'), '0',
		"nor in the table rnnlm.job");
	is(q1("SELECT count(*) FROM rnnlm_training_history(${long}::bigint)", as => 'bob'), '0',
		"nor their history");
	my (undef, $err) = sql("SELECT rnnlm_cancel($long)", as => 'bob');
	like($err, qr/ERROR:  42704: rnnlm job $long does not exist/, 'another role cannot cancel it (42704)');
	(undef, $err) = sql("SELECT rnnlm_wait($long, '1 s')", as => 'bob');
	like($err, qr/ERROR:  42704: rnnlm job $long does not exist/, 'nor wait on it (42704)');
	(undef, $err) = sql("SELECT rnnlm_wait($job1)", as => 'bob');
	like($err, qr/ERROR:  42704: /, 'nor on a finished one (42704)');
	(undef, $err) = sql("SELECT rnnlm_resume($long)", as => 'bob');
	like($err, qr/ERROR:  42704: /, 'nor resume it (42704)');
	is(q1("SELECT rnnlm_forget($job1)", as => 'bob'), 'f', 'rnnlm_forget of a job of another role is false');
	is(q1("SELECT count(*) FROM rnnlm.job WHERE id = $job1"), '1', 'and the job is still there');
	(undef, $err) = sql("UPDATE rnnlm.job SET state = 'cancelled' WHERE id = $long RETURNING 1", as => 'bob');
	like($err, qr/ERROR:  42501: permission denied for table job/, 'another role cannot change the job row (42501)');
	(undef, $err) = sql("UPDATE rnnlm.job SET threads = 300 WHERE id = $long", as => 'alice');
	like($err, qr/ERROR:  42501: permission denied for table job/, 'nor can its owner (42501)');
	(undef, $err) = sql("INSERT INTO rnnlm.job (model, owner, training_query, options, search_path, threads, state, worker_pid)"
		  . " VALUES ('forged', 'alice', 'SELECT body FROM corpus', '{}', 'public', 300, 'running', 1) RETURNING id",
		as => 'alice');
	like($err, qr/ERROR:  42501: permission denied for table job/, 'nor insert a job row of its choosing (42501)');
	(undef, $err) = sql("BEGIN;\nLOCK TABLE rnnlm.model, rnnlm.job IN ACCESS EXCLUSIVE MODE;\nROLLBACK;", as => 'bob');
	like($err, qr/ERROR:  42501: permission denied for table/, 'nor lock the tables against everyone (42501)');
	is(q1("SELECT state FROM rnnlm.jobs WHERE id = $long"), 'running', 'the job is still running');
	my $bobs = submit('bobs', 'SELECT body FROM corpus', qq{$small, "epochs": 1}, as => 'bob');
	like(q1("SELECT rnnlm_wait($bobs)->>'model'", as => 'bob'), qr/^bobs$/, 'bob runs a job of his own');
	is(q1("SELECT string_agg(id::text, ',' ORDER BY id) FROM rnnlm.jobs", as => 'bob'), $bobs,
		'bob sees only his own job');
	is(q1("SELECT count(*) FROM rnnlm.jobs WHERE id = $bobs", as => 'alice'), '0', 'alice does not see it');
	is(q1("SELECT count(DISTINCT owner) FROM rnnlm.jobs WHERE id IN ($job1, $long, $bobs)"), '2',
		'a superuser sees the jobs of every role');
}

# 3. rnnlm_cancel stops the running job within a second
{
	my $pid = q1("SELECT worker_pid FROM rnnlm.jobs WHERE id = $long");
	my $t0 = time();
	is(q1("SELECT rnnlm_cancel($long)", as => 'alice'), 't', 'rnnlm_cancel of a running job is true');
	my $done = 0;
	while (time() - $t0 < 10)
	{
		$done = q1("SELECT (SELECT state FROM rnnlm.jobs WHERE id = $long) = 'cancelled'"
			  . " AND NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid"
			  . "                   OR backend_type = 'rnnlm training job')") eq 't';
		last if $done;
		usleep(20_000);
	}
	my $secs = time() - $t0;
	ok($done && $secs < 1.0,
		sprintf('the job is cancelled and its worker gone within a second (%.3f s)', $secs));
	is(workers(), '0', 'no rnnlm training job backend remains');
	is(q1("SELECT count(*) FROM rnnlm.model WHERE name = 'long'"), '0', 'no model was stored');
	my (undef, $err) = sql("SELECT rnnlm_wait($long)", as => 'alice');
	like($err, qr/ERROR:  57014: rnnlm job $long was cancelled/, 'rnnlm_wait of a cancelled job: 57014');
	is(q1("SELECT rnnlm_cancel($long)", as => 'alice'), 'f', 'cancelling it again is false');
	is(q1("SELECT rnnlm_cancel($job1)", as => 'alice'), 'f', 'cancelling a succeeded job is false');
	(undef, $err) = sql("SELECT rnnlm_resume($job1)", as => 'alice');
	like($err, qr/ERROR:  55000: rnnlm job $job1 is succeeded/, 'rnnlm_resume of a succeeded job: 55000');
}

# A transaction that looked at pg_stat_activity before a job's worker started
# must still see the job as running: not resume it into a second worker, nor
# cancel it without stopping the worker.
{
	my $s = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'alice' ]);
	$s->query_safe('BEGIN');
	$s->query_safe('SELECT count(*) FROM pg_stat_activity');
	my $id = submit('late', 'SELECT body FROM corpus', qq{$small, "epochs": 1000}, as => 'alice');
	ok(wait_epoch($id, 1), 'a job starts while another transaction is open');
	is($s->query("SELECT state FROM rnnlm.jobs WHERE id = $id"), 'running',
		'that transaction sees it running');
	$s->{stderr} = '';
	$s->query("\\set VERBOSITY verbose\nSELECT rnnlm_resume($id)");
	like($s->{stderr}, qr/ERROR:  55000: /, 'and cannot resume it (55000)');
	$s->{stderr} = '';
	$s->query('COMMIT');
	$s->quit;
	usleep(500_000);
	is(workers(), '1', 'the job still has one worker');
	q1("SELECT rnnlm_cancel($id)", as => 'alice');
	# whatever worker the job has, even one it should not have
	q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE backend_type = 'rnnlm training job'");
	ok(wait_for("SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'rnnlm training job'", 10),
		'and is cancelled');
}

# A member of the owning role without its privileges (NOINHERIT) sees the
# role's jobs (rnnlm.is_owner), but not the details of its backends in
# pg_stat_activity: a running job must still be running to it.
{
	my $id = submit('carols', 'SELECT body FROM corpus', qq{$small, "epochs": 1000}, as => 'alice');
	ok(wait_epoch($id, 1), "a job of alice is running");
	is(q1("SELECT state FROM rnnlm.jobs WHERE id = $id", as => 'carol'), 'running',
		'a NOINHERIT member of alice sees it running');
	my (undef, $err) = sql("SELECT rnnlm_resume($id)", as => 'carol');
	like($err, qr/ERROR:  55000: /, 'and cannot resume it (55000)');
	usleep(500_000);
	is(workers(), '1', 'the job still has one worker');
	q1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE backend_type = 'rnnlm training job'");
	ok(wait_for("SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'rnnlm training job'", 10),
		'and is cancelled');
}

# ---------- 4. crash, restart and resume ----------

my $resumable = qq{$small, "seed": 7, "epochs": 6, "checkpoint_minutes": 0.005};
my $job_a = submit('resumed', 'SELECT body FROM big', $resumable, as => 'alice');
# Stop the worker (SIGSTOP) just after it recorded a checkpoint in the middle
# of an epoch (step < steps), from epoch 2 on, so that what it resumes from is
# known; then kill it.
my ($pid, $where) = (0, '');
for my $try (1 .. 100)
{
	last unless wait_for("SELECT state = 'running' AND checkpointed_at IS NOT NULL"
		  . " AND epoch >= 2 AND step < steps FROM rnnlm.jobs WHERE id = $job_a", 60);
	$pid = q1("SELECT worker_pid FROM rnnlm.jobs WHERE id = $job_a");
	kill('STOP', $pid);
	# stopped outside a write transaction: one stopped in its commit could
	# have its commit in the WAL, replayed after the crash, but not yet seen
	$where = q1("SELECT epoch || ' ' || step || ' ' || steps FROM rnnlm.jobs"
		  . " WHERE id = $job_a AND state = 'running' AND epoch >= 2 AND step < steps"
		  . "   AND (SELECT backend_xid IS NULL FROM pg_stat_activity WHERE pid = $pid)");
	last if $where ne '';
	kill('CONT', $pid);
	usleep(int(rand(200_000)));    # not in step with the worker's transactions
}
isnt($where, '', "job A is stopped just after a checkpoint in the middle of an epoch (epoch, step, steps: $where)");
{
	my $offset = -s $node->logfile;
	ok(kill('KILL', $pid), "SIGKILL to the worker of job A (pid $pid)");
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
	$node->wait_for_log(qr/database system is ready to accept connections/, $offset);
	ok(wait_for('SELECT true', 60), 'the server restarts after the crash');
	ok($node->log_contains("\\(PID $pid\\) was terminated by signal 9"),
		'the postmaster saw the worker crash');
	$node->restart;
	is(q1("SELECT state FROM rnnlm.jobs WHERE id = $job_a", as => 'alice'), 'interrupted',
		'after the crash and a restart job A is interrupted');
	is(q1("SELECT epoch || ' ' || step || ' ' || steps FROM rnnlm.jobs WHERE id = $job_a"), $where,
		'its last checkpoint is the one in the middle of the epoch');
	is(q1("SELECT count(*) FROM rnnlm.model WHERE name = 'resumed'"), '0', 'job A stored no model');
	my (undef, $err) = sql("SELECT rnnlm_wait($job_a)", as => 'alice');
	like($err, qr/ERROR:  55000: rnnlm job $job_a was interrupted/, 'rnnlm_wait of an interrupted job: 55000');
	is(q1("SELECT rnnlm_resume($job_a)", as => 'alice'), $job_a, 'rnnlm_resume returns the job id');
	(undef, $err) = sql("SELECT rnnlm_resume($job_a)", as => 'alice');
	like($err, qr/ERROR:  55000: rnnlm job $job_a is (running|queued)/,
		'resuming it again while it runs: 55000');
	my $summary = q1("SELECT rnnlm_wait($job_a, '120 s')->>'epochs_run'", as => 'alice');
	is($summary, '6', 'the resumed job A runs to its 6th epoch');
	is(q1("SELECT state || ' ' || resumes FROM rnnlm.jobs WHERE id = $job_a", as => 'alice'),
		'succeeded 1', 'job A succeeded, resumed once');
	is(q1("SELECT count(*) FROM rnnlm_training_history(${job_a}::bigint)"), '6',
		'its history has the 6 epochs');
}
my $job_b = submit('uninterrupted', 'SELECT body FROM big', $resumable, as => 'alice');
like(q1("SELECT rnnlm_wait($job_b, '120 s')->>'epochs_run'", as => 'alice'), qr/^6$/,
	'job B, with the same options, runs uninterrupted');
is(q1("SELECT resumes FROM rnnlm.jobs WHERE id = $job_b"), '0', 'job B was not resumed');
{
	my $md5_a = q1("SELECT md5(weights) FROM rnnlm.model WHERE name = 'resumed'");
	my $md5_b = q1("SELECT md5(weights) FROM rnnlm.model WHERE name = 'uninterrupted'");
	like($md5_a, qr/^[0-9a-f]{32}$/, 'job A stored a model');
	is($md5_a, $md5_b, 'the resumed model has exactly the weights of the uninterrupted one');
	is(q1("SELECT a.train_loss = b.train_loss AND a.val_loss = b.val_loss"
		  . " FROM rnnlm.models a, rnnlm.models b WHERE a.name = 'resumed' AND b.name = 'uninterrupted'"),
		't', 'and the same losses');
}

# a job running when the server stops (immediate, then fast) is interrupted
{
	my $job_c = submit('stopped', 'SELECT body FROM big', qq{$small, "epochs": 1000}, as => 'alice');
	ok(wait_epoch($job_c, 1), 'job C is running');
	$node->stop('immediate');
	$node->start;
	is(q1("SELECT state FROM rnnlm.jobs WHERE id = $job_c", as => 'alice'), 'interrupted',
		'after an immediate shutdown job C is interrupted');
	q1("SELECT rnnlm_resume($job_c)", as => 'alice');
	ok(wait_for("SELECT state = 'running' FROM rnnlm.jobs WHERE id = $job_c", 30), 'job C runs again');
	$node->restart;
	is(q1("SELECT state || ' ' || resumes FROM rnnlm.jobs WHERE id = $job_c", as => 'alice'),
		'interrupted 1', 'after a fast shutdown the resumed job C is interrupted again');
	is(q1("SELECT rnnlm_cancel($job_c)", as => 'alice'), 't', 'rnnlm_cancel of an interrupted job is true');
	is(q1("SELECT state FROM rnnlm.jobs WHERE id = $job_c", as => 'alice'), 'cancelled',
		'and it is cancelled');
	my (undef, $err) = sql("SELECT rnnlm_resume($job_c)", as => 'alice');
	like($err, qr/ERROR:  55000: rnnlm job $job_c is cancelled/, 'a cancelled job cannot be resumed');

	# pg_terminate_backend (SIGTERM) interrupts a job too
	my $job_t = submit('terminated', 'SELECT body FROM big', qq{$small, "epochs": 1000}, as => 'alice');
	ok(wait_epoch($job_t, 1), 'job T is running');
	is(q1("SELECT pg_terminate_backend(worker_pid, 10000) FROM rnnlm.jobs WHERE id = $job_t", as => 'alice'),
		't', 'its owner terminates its worker');
	is(q1("SELECT state FROM rnnlm.jobs WHERE id = $job_t", as => 'alice'), 'interrupted',
		'after pg_terminate_backend job T is interrupted');
	is(q1("SELECT rnnlm_cancel($job_t)", as => 'alice'), 't', 'and can be cancelled');
	is(workers(), '0', 'no rnnlm training job backend is left');
}

# ---------- 7. a role without LOGIN ----------
{
	my $before = q1('SELECT count(*) FROM rnnlm.job');
	my (undef, $err) = sql("SET ROLE nologin_role;\n"
		  . "SELECT rnnlm_train_async('nologin', 'SELECT body FROM corpus', '{$small, \"epochs\": 1}')");
	like($err,
		qr/ERROR:  42501: role "nologin_role" cannot run rnnlm training jobs because it cannot log in/,
		'a role without LOGIN cannot submit a job (42501)');
	is(q1('SELECT count(*) FROM rnnlm.job'), $before, 'and no job row is left');
	is(workers(), '0', 'and no worker started');
	(undef, $err) = sql("SET default_transaction_read_only = on;\n"
		  . "SELECT rnnlm_train_async('readonly', 'SELECT body FROM corpus', '{$small, \"epochs\": 1}')");
	like($err, qr/ERROR:  25006: /, 'nor can a read-only transaction (25006)');
	is(q1('SELECT count(*) FROM rnnlm.job'), $before, 'which leaves no job row either');
}

# ---------- 9. submissions in transactions ----------
{
	my ($out, $err) = sql(qq{BEGIN;
SELECT rnnlm_train_async('rolledback', 'SELECT body FROM corpus', '{$small, "epochs": 3}');
ROLLBACK;}, as => 'alice');
	my ($id) = $out =~ /^\s*(\d+)\s*$/m;
	ok(defined $id, 'a job submitted in a transaction gets an id') or diag($out . $err);
	$id //= 0;
	ok(wait_for("SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'rnnlm training job'", 5),
		'after a rollback its worker exits within a few seconds');
	is(q1("SELECT count(*) FROM rnnlm.job WHERE id = $id"), '0', 'and it left no job');
	is(q1("SELECT count(*) FROM rnnlm.model WHERE name = 'rolledback'"), '0', 'and no model');

	# rnnlm_wait in the transaction that submitted the job would wait forever
	my ($ret, $out2, $err2) = $node->psql('postgres', qq{\\set VERBOSITY verbose
BEGIN;
SELECT rnnlm_train_async('ownwait', 'SELECT body FROM corpus', '{$small, "epochs": 1}') AS id \\gset
SAVEPOINT before_wait;
SELECT rnnlm_wait(:id, '30 s');
ROLLBACK TO before_wait;
COMMIT;
SELECT rnnlm_wait(:id, '60 s')->>'model';},
		on_error_stop => 0, extra_params => [ '-U', 'alice' ]);
	like($err2, qr/ERROR:  55000: rnnlm job \d+ starts when this transaction commits/,
		'rnnlm_wait in the submitting transaction raises 55000 at once');
	is($out2, 'ownwait', 'and after the commit the job runs to the end');

	# a job submitted in an open transaction waits for its commit
	my $s = $node->background_psql('postgres', extra_params => [ '-U', 'alice' ]);
	$s->query_safe('BEGIN');
	my $pending = $s->query_safe(
		qq{SELECT rnnlm_train_async('committed', 'SELECT body FROM corpus', '{$small, "epochs": 1}')});
	usleep(1_000_000);
	is(q1("SELECT count(*) FROM rnnlm.job WHERE id = $pending"), '0',
		'a job in an uncommitted transaction is not visible to others');
	is(workers(), '1', 'its worker is there, waiting');
	is(q1("SELECT count(*) FROM rnnlm.model WHERE name = 'committed'"), '0', 'and has trained nothing');
	$s->query_safe('COMMIT');
	$s->quit;
	like(q1("SELECT rnnlm_wait($pending, '60 s')->>'model'", as => 'alice'), qr/^committed$/,
		'once committed, the job runs to the end');
}

# ---------- 10. a job writes about the WAL of the same training ----------
# Its checkpoints (weights, Adam moments, best weights: four times the
# model) go to a file under the data directory, not into the WAL; with the
# default checkpoint_minutes a job checkpoints at every epoch's end.
{
	my $o = qq{$small, "hidden_size": 96, "seed": 3, "epochs": 4};
	my $wal = sub {
		my ($sql) = @_;
		my $l0 = q1('SELECT pg_current_wal_insert_lsn()');
		q1($sql, as => 'alice');
		return q1("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$l0')");
	};
	my $sync = &$wal(qq{SELECT rnnlm_train('wal_sync', 'SELECT body FROM corpus', '{$o}')});
	my $async;
	my $l0 = q1('SELECT pg_current_wal_insert_lsn()');
	my $id = submit('wal_job', 'SELECT body FROM corpus', $o, as => 'alice');
	q1("SELECT rnnlm_wait($id, '300 s')", as => 'alice');
	$async = q1("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$l0')");
	cmp_ok($async, '<=', 2 * $sync,
		"a job's WAL ($async bytes) is within twice that of rnnlm_train ($sync bytes), the same 4 epochs");
	is(q1("SELECT checkpointed_at IS NOT NULL AND checkpoint IS NULL FROM rnnlm.job WHERE id = $id"), 't',
		'it checkpointed, into no row');
	my $datadir = $node->data_dir;
	my @files = glob("$datadir/pg_rnnlm/job_*_$id.ckpt*");
	is(scalar(@files), 0, 'and its checkpoint file is gone once it ended');
}

ok(!$node->log_contains('terminated by signal (?!9)'), 'no backend crashed (other than the one killed)');
$node->stop;

# ---------- 6. fair slots, squatted locks, read-only roles ----------
{
	my $slots = RnnlmTest::new_node('slots', conf => <<'CONF');
max_worker_processes = 3
max_parallel_workers = 0
max_logical_replication_workers = 0
rnnlm.max_jobs_per_role = 2
CONF
	$slots->safe_psql('postgres', q{
CREATE TABLE corpus AS
  SELECT 'line ' || i || ' of a corpus about printers, tickets and logs' AS body
    FROM generate_series(1, 2000) i;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE reader LOGIN;
ALTER ROLE reader SET default_transaction_read_only = on;
GRANT SELECT ON corpus TO alice, bob, reader;});
	my $as = sub {
		my ($role, $sql) = @_;
		my ($ret, $out, $err) = $slots->psql('postgres', "\\set VERBOSITY verbose\n$sql",
			extra_params => [ '-U', $role ]);
		return ($out, $err);
	};
	my $long = qq{'{$small, "epochs": 100000}'};
	my $next = $slots->safe_psql('postgres', "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM rnnlm.job_id_seq");
	# bob takes the advisory locks that 0.2's workers took for the next jobs,
	# in every form a role can
	my $squat = $slots->background_psql('postgres', extra_params => [ '-U', 'bob' ]);
	for my $id ($next .. $next + 5)
	{
		$squat->query_safe("SELECT pg_advisory_lock(1919839852, $id), pg_advisory_lock($id),"
			  . " pg_advisory_lock(0, $id)");
	}
	my @alice = map { (&$as('alice', "SELECT rnnlm_train_async('a$_', 'SELECT body FROM corpus', $long)"))[0] } 1 .. 3;
	like(join(',', @alice), qr/^\d+,\d+,\d+$/, 'alice submits three jobs (no error, though over her cap)');
	ok($slots->poll_query_until('postgres',
			"SELECT count(*) = 2 FROM rnnlm.jobs WHERE state = 'running' AND owner = 'alice'::regrole"),
		'two of them run, though bob holds advisory locks on their ids');
	is($slots->safe_psql('postgres', "SELECT state || ': ' || wait_reason FROM rnnlm.jobs WHERE id = $alice[2]"),
		'queued: role "alice" already runs 2 training jobs (rnnlm.max_jobs_per_role)',
		'the third waits as queued, with the reason');
	is((&$as('alice', "SELECT wait_reason IS NOT NULL FROM rnnlm.jobs WHERE id = $alice[2]"))[0], 't',
		'alice sees the reason');
	my ($b1) = &$as('bob', "SELECT rnnlm_train_async('b1', 'SELECT body FROM corpus', $long)");
	ok($slots->poll_query_until('postgres', "SELECT state = 'running' FROM rnnlm.jobs WHERE id = $b1"),
		'bob\'s job still gets the third worker slot');
	my ($b2) = &$as('bob', "SELECT rnnlm_train_async('b2', 'SELECT body FROM corpus', $long)");
	like($slots->safe_psql('postgres', "SELECT state || ': ' || wait_reason FROM rnnlm.jobs WHERE id = $b2"),
		qr/^queued: no background worker slot is free \(max_worker_processes = 3\)$/,
		'bob\'s second job waits for a free slot, with the reason (no 53400)');
	my (undef, $err) = &$as('alice', "SELECT rnnlm_cancel($alice[0])");
	is($err, '', 'alice cancels her first job');
	ok($slots->poll_query_until('postgres',
			"SELECT state = 'running' AND wait_reason IS NULL FROM rnnlm.jobs WHERE id = $alice[2]"),
		'her waiting job starts when the slot frees (the oldest waiting job first)');
	like($slots->safe_psql('postgres', "SELECT state || ': ' || wait_reason FROM rnnlm.jobs WHERE id = $b2"),
		qr/^queued: no background worker slot/, 'bob\'s second job still waits');
	(undef, $err) = &$as('bob', "SELECT rnnlm_cancel($b1)");
	ok($slots->poll_query_until('postgres', "SELECT state = 'running' FROM rnnlm.jobs WHERE id = $b2"),
		'and starts when bob\'s first job ends');
	(undef, $err) = &$as('alice', "SELECT rnnlm_runtime() IS NOT NULL;\nSET rnnlm.max_jobs_per_role = 100");
	like($err, qr/ERROR:  55P02: parameter "rnnlm.max_jobs_per_role" cannot be changed now/,
		'a role cannot raise its own cap');
	(undef, $err) = &$as('alice',
		qq{SELECT rnnlm_train_async('tiny', 'SELECT body FROM corpus', '{$small, "checkpoint_minutes": 0.000001}')});
	like($err, qr/ERROR:  22023: option "checkpoint_minutes" must be at least 5/,
		'checkpoint_minutes below rnnlm.min_checkpoint_minutes is refused (22023)');
	$squat->quit;
	for my $id (@alice[1, 2], $b2)
	{
		$slots->safe_psql('postgres', "SELECT rnnlm_cancel($id)");
	}
	ok($slots->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'rnnlm training job'"),
		'every worker is gone after the cancels');
	is($slots->safe_psql('postgres', "SELECT string_agg(model || ' ' || state, ',' ORDER BY id) FROM rnnlm.jobs"),
		'a1 cancelled,a2 cancelled,a3 cancelled,b1 cancelled,b2 cancelled', 'every job ended cancelled');

	# a role whose transactions are read-only by default
	my ($rj) = &$as('reader', "SET default_transaction_read_only = off;\n"
		  . qq{SELECT rnnlm_train_async('ro', 'SELECT body FROM corpus', '{$small, "epochs": 1}')});
	like($rj, qr/^\d+$/, 'a role with default_transaction_read_only on submits a job from a writable session');
	(undef, $err) = &$as('reader', "SELECT rnnlm_wait($rj, '60 s')");
	like($err, qr/ERROR:  25006: rnnlm job $rj failed: rnnlm training job cannot run: its role has default_transaction_read_only on/,
		'the job fails with the reason (25006)');
	is($slots->safe_psql('postgres', "SELECT state || ' ' || error_code FROM rnnlm.jobs WHERE id = $rj"),
		'failed 25006', 'rnnlm.jobs records it failed, with the SQLSTATE');

	my $again = $slots->safe_psql('postgres',
		"SELECT rnnlm_train_async('again', 'SELECT body FROM corpus', '{$small, \"epochs\": 1}')");
	is($slots->safe_psql('postgres', "SELECT rnnlm_wait($again, '60 s')->>'model'"), 'again',
		'with the slots free again, a job runs');

	# a worker trusts its row no further than submitting checks it: a row
	# written behind the functions (here by a superuser, the only role that
	# still can) that asks for 300 threads fails with the reason
	my $forged = $slots->safe_psql('postgres', q{
INSERT INTO rnnlm.job (model, owner, training_query, options, search_path, threads)
VALUES ('forged', 'alice', 'SELECT body FROM corpus', '{"epochs": 1}', 'public', 300)
RETURNING id});
	(undef, $err) = &$as('alice', "SELECT rnnlm_wait($forged, '60 s')");
	like($err, qr/ERROR:  22023: rnnlm job $forged failed: rnnlm job $forged asks for 300 threads/,
		'a job row asking for 300 threads fails when its worker claims it (22023)');
	is($slots->safe_psql('postgres', "SELECT state || ' ' || error_code FROM rnnlm.jobs WHERE id = $forged"),
		'failed 22023', 'and rnnlm.jobs records it failed, with the SQLSTATE');
	$slots->stop;
}

done_testing();
