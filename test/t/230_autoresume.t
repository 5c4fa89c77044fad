# With rnnlm in shared_preload_libraries, interrupted jobs resume on their
# own: a launcher ("rnnlm launcher") runs from the server's start, and after
# a crash (SIGKILL of a job's worker) the postmaster starts it again; it
# resumes the interrupted job from its checkpoint, and the job succeeds.
# With rnnlm.resume_jobs = off a job stays interrupted, for rnnlm_resume().
# Preloading also gives shared memory, where trainings inside a statement
# report their progress (rnnlm.trainings).
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $node = RnnlmTest::new_node('autoresume', conf => <<'CONF');
shared_preload_libraries = 'rnnlm'
restart_after_crash = on
rnnlm.min_checkpoint_minutes = 0
CONF
$node->safe_psql('postgres', q{
CREATE TABLE big AS
  SELECT 'line ' || i || ' of a corpus about printers, tickets and logs' AS body
    FROM generate_series(1, 10000) i;
CREATE ROLE alice LOGIN;
GRANT SELECT ON big TO alice;});

my $opts = '{"tokenizer": "char", "hidden_size": 32, "embedding_dim": 8, "num_layers": 1, '
  . '"seed": 7, "epochs": 4, "checkpoint_minutes": 0.005}';

ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'rnnlm launcher'"),
	'the launcher runs from the start');

# a job, killed in the middle of its training
my $job = $node->safe_psql('postgres', "SELECT rnnlm_train_async('ar', 'SELECT body FROM big', '$opts')",
	extra_params => [ '-U', 'alice' ]);
ok($node->poll_query_until('postgres',
		"SELECT state = 'running' AND checkpointed_at IS NOT NULL AND epoch >= 2 FROM rnnlm.jobs WHERE id = $job"),
	'the job runs and checkpoints');
my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM rnnlm.jobs WHERE id = $job");
my $offset = -s $node->logfile;
ok(kill('KILL', $pid), "SIGKILL to its worker (pid $pid)");
$node->wait_for_log(qr/database system is ready to accept connections/, $offset);
ok($node->poll_query_until('postgres', "SELECT resumes >= 1 FROM rnnlm.jobs WHERE id = $job"),
	'after the crash the launcher resumes it');
ok($node->log_contains(qr/rnnlm: resumed 1 interrupted training job in database "postgres"/, $offset),
	'and says so in the log');
is($node->safe_psql('postgres', "SELECT rnnlm_wait($job, '300 s')->>'model'", extra_params => [ '-U', 'alice' ]),
	'ar', 'the resumed job succeeds');
is($node->safe_psql('postgres', "SELECT state || ' ' || resumes || ' ' || fraction_done FROM rnnlm.jobs WHERE id = $job"),
	'succeeded 1 1', 'once, to the end');

# with rnnlm.resume_jobs off, a job stays interrupted
$node->append_conf('postgresql.conf', 'rnnlm.resume_jobs = off');
$node->reload;
$job = $node->safe_psql('postgres', "SELECT rnnlm_train_async('ar2', 'SELECT body FROM big', '$opts')",
	extra_params => [ '-U', 'alice' ]);
ok($node->poll_query_until('postgres',
		"SELECT state = 'running' AND checkpointed_at IS NOT NULL FROM rnnlm.jobs WHERE id = $job"),
	'a second job runs');
$pid = $node->safe_psql('postgres', "SELECT worker_pid FROM rnnlm.jobs WHERE id = $job");
$offset = -s $node->logfile;
kill('KILL', $pid);
$node->wait_for_log(qr/database system is ready to accept connections/, $offset);
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'rnnlm launcher'"),
	'the launcher is back after the crash');
sleep(3);
is($node->safe_psql('postgres', "SELECT state || ' ' || resumes FROM rnnlm.jobs WHERE id = $job"),
	'interrupted 0', 'with rnnlm.resume_jobs off it leaves the job interrupted');
$node->safe_psql('postgres', "SELECT rnnlm_resume($job)", extra_params => [ '-U', 'alice' ]);
is($node->safe_psql('postgres', "SELECT rnnlm_wait($job, '300 s')->>'model'", extra_params => [ '-U', 'alice' ]),
	'ar2', 'for rnnlm_resume()');

# a training inside a statement shows in rnnlm.trainings, through shared
# memory, to its role and superusers
$node->safe_psql('postgres', 'CREATE ROLE bob LOGIN');
my $bg = $node->background_psql('postgres', extra_params => [ '-U', 'alice' ]);
$bg->query_until(qr/started/, "\\echo started\n"
	  . "SELECT rnnlm_train('in_stmt', 'SELECT body FROM big', '$opts')->>'model';\n");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM rnnlm.trainings WHERE model = 'in_stmt' AND role = 'alice'::regrole"
		  . " AND step > 0 AND fraction_done > 0 AND fraction_done < 1 AND database = 'postgres'"),
	'a running rnnlm_train shows in rnnlm.trainings, with its progress');
is($node->safe_psql('postgres', 'SELECT count(*) FROM rnnlm.trainings', extra_params => [ '-U', 'alice' ]),
	'1', 'its role sees it');
is($node->safe_psql('postgres', 'SELECT count(*) FROM rnnlm.trainings', extra_params => [ '-U', 'bob' ]),
	'0', 'another role does not');
$bg->quit;
is($node->safe_psql('postgres', "SELECT count(*) FROM rnnlm.trainings"), '0', 'once it ended, it is gone');

ok(!$node->log_contains('terminated by signal (?!9)'), 'no other process crashed');
$node->stop;
done_testing();
