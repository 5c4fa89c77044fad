# Scheduled retraining with pg_cron: a cron job that calls rnnlm_train_async
# with "replace": true submits a training job from pg_cron's background
# worker; the job runs to the end and replaces the model.  pg_cron (Debian's
# postgresql-15-cron, version 1.4) runs a job at most once a minute, so this
# waits for the next minute boundary.  Skips when pg_cron is not installed in
# the PostgreSQL the tests run with.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

# the pg_config first on PATH belongs to the PostgreSQL the nodes run with
my $sharedir = `pg_config --sharedir`;
my $pkglibdir = `pg_config --pkglibdir`;
chomp($sharedir, $pkglibdir);
plan skip_all => "pg_cron is not installed (no $sharedir/extension/pg_cron.control)"
  unless -f "$sharedir/extension/pg_cron.control" && -f "$pkglibdir/pg_cron.so";

my $node = RnnlmTest::new_node('cron', conf => <<'CONF');
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
CONF

$node->safe_psql('postgres', q{
CREATE EXTENSION pg_cron;
CREATE TABLE corpus AS
  SELECT 'line ' || i || ' of a corpus about printers, tickets and logs' AS body
    FROM generate_series(1, 2000) i;
});

my $small = '"tokenizer": "char", "hidden_size": 32, "embedding_dim": 8, "num_layers": 1, "epochs": 2';

# the model as it is before any scheduled run
is($node->safe_psql('postgres', qq{
SET client_min_messages = warning;
SELECT rnnlm_train('nightly', 'SELECT body FROM corpus', '{$small}')->>'model'}),
	'nightly', 'the model is trained once, synchronously');
my $created = $node->safe_psql('postgres',
	"SELECT created_at FROM rnnlm.models WHERE name = 'nightly'");
is($node->safe_psql('postgres', 'SELECT count(*) FROM rnnlm.jobs'), '0', 'there is no training job yet');

my $cron_id = $node->safe_psql('postgres', qq{
SELECT cron.schedule('rnnlm-nightly', '* * * * *',
  \$\$SELECT rnnlm_train_async('nightly', 'SELECT body FROM corpus', '{"replace": true, $small}')\$\$)});
like($cron_id, qr/^\d+$/, 'the retraining is scheduled every minute');

# pg_cron starts the command at the next minute boundary; the job it submits
# then trains for a second or so.
my $t0 = time();
my $done = '';
while (time() - $t0 < 150)
{
	$done = $node->safe_psql('postgres', qq{
SELECT j.id FROM rnnlm.jobs j
  JOIN cron.job_run_details d ON d.jobid = $cron_id AND d.status = 'succeeded'
   AND j.submitted_at BETWEEN d.start_time AND d.end_time
 WHERE j.model = 'nightly' AND j.state = 'succeeded'
 ORDER BY j.id LIMIT 1});
	last if $done ne '';
	usleep(500_000);
}
like($done, qr/^\d+$/,
	sprintf('a job submitted by the cron run succeeded (after %.0f s)', time() - $t0))
  or diag($node->safe_psql('postgres', q{
SELECT string_agg(format('%s %s %s %s %s', runid, status, return_message, start_time, end_time), E'\n')
  FROM cron.job_run_details}) . "\n"
	  . $node->safe_psql('postgres', q{
SELECT string_agg(format('%s %s %s %s', id, state, error, submitted_at), E'\n') FROM rnnlm.jobs}));
$done = 0 unless $done =~ /^\d+$/;

is($node->safe_psql('postgres', qq{
SELECT d.return_message FROM cron.job_run_details d
 WHERE d.jobid = $cron_id AND d.status = 'succeeded' ORDER BY d.runid LIMIT 1}),
	'SELECT 1', 'cron.job_run_details shows the run succeeded, returning one row');
is($node->safe_psql('postgres', "SELECT owner = current_user::regrole FROM rnnlm.jobs WHERE id = $done"),
	't', 'the job belongs to the role that scheduled it');
is($node->safe_psql('postgres', "SELECT options->>'replace' FROM rnnlm.jobs WHERE id = $done"),
	'true', 'the job was submitted with "replace": true');
isnt($node->safe_psql('postgres', "SELECT created_at FROM rnnlm.models WHERE name = 'nightly'"),
	$created, 'the model was replaced');
is($node->safe_psql('postgres', "SELECT count(*) FROM rnnlm.models WHERE name = 'nightly'"),
	'1', 'there is still one model of that name');
is($node->safe_psql('postgres', q{
SELECT m.created_at >= j.started_at AND m.created_at <= j.finished_at
  FROM rnnlm.models m, rnnlm.jobs j WHERE m.name = 'nightly' AND j.id = }. $done),
	't', 'the stored model is the one that job trained');
cmp_ok($node->safe_psql('postgres', "SELECT rnnlm_perplexity('nightly', 'line 3 of a corpus')"),
	'>', 1, 'and it scores text');

note("cron runs:\n" . $node->safe_psql('postgres', q{
SELECT string_agg(format('%s %s %s %s %s', runid, status, return_message, start_time, end_time), E'\n'
                  ORDER BY runid)
  FROM cron.job_run_details}));

is($node->safe_psql('postgres', "SELECT cron.unschedule('rnnlm-nightly')"), 't',
	'the retraining is unscheduled');
is($node->safe_psql('postgres', "SELECT count(*) FROM cron.job"), '0', 'no cron job is left');
# a run that started just before the unschedule may still be training
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM rnnlm.jobs WHERE state IN ('queued', 'running')"),
	'no training job is left running');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM rnnlm.jobs WHERE model = 'nightly' AND state <> 'succeeded'"),
	'0', 'every scheduled job succeeded');

$node->stop;
done_testing();
