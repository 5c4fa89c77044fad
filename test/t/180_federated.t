# Federated training: a coordinator and two shards (postgres_fdw servers
# with user mappings), each shard holding half of the training lines of
# test/data/shakespeare.txt.  rnnlm_train_federated trains over both without their
# text leaving them, and reaches within 0.05 nats of rnnlm_train over all
# the lines in one place, with the same options and seed: on held-out lines
# that neither saw (rnnlm_evaluate on the coordinator) and in the validation
# loss each reports.  The shards' logs show that the coordinator only
# called the federated functions there (no query fetches a row).  Also:
# the result is an ordinary model (generate, publish back to a shard),
# round_steps, a shard's error with its server and SQLSTATE, the argument
# errors, and a cancel on the coordinator cancelling the shards' work.
use strict;
use warnings;

use Encode qw(decode encode);
use JSON::PP qw(decode_json);
use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $data_file = RnnlmTest::test_data('shakespeare.txt');

my $shard_conf = "log_statement = 'all'\nlog_line_prefix = '[%a] '\n";
my $coord = RnnlmTest::new_node('fcoord');
my @shards = map { RnnlmTest::new_node("fshard$_", conf => $shard_conf) } 0, 1;
plan skip_all => 'postgres_fdw is not installed in this PostgreSQL'
  unless $coord->safe_psql('postgres',
	q{SELECT count(*) FROM pg_available_extensions WHERE name = 'postgres_fdw'});

# the first 100,000 characters, one row per non-empty line; every tenth line
# is held out, the others alternate between the shards
open(my $fh, '<:raw', $data_file) or die "cannot read $data_file: $!";
my $text = decode('UTF-8', do { local $/; <$fh> });
close($fh);
my @lines = grep { length } split /\n/, substr($text, 0, 100_000);
$#lines-- while @lines && $lines[-1] eq '';

# COPY text of (id, line) rows for the ids that pass the filter.
sub copy_rows
{
	my ($keep) = @_;
	my $s = '';
	for my $i (1 .. @lines)
	{
		next unless $keep->($i);
		(my $l = $lines[ $i - 1 ]) =~ s/\\/\\\\/g;
		$l =~ s/\t/\\t/g;
		$s .= "$i\t$l\n";
	}
	return $s . "\\.\n";
}

sub load
{
	my ($node, $table, $keep) = @_;
	$node->safe_psql('postgres',
		encode('UTF-8',
			"SET client_encoding = 'UTF8';\nCREATE TABLE $table (id int PRIMARY KEY, line text);\n"
			  . "COPY $table FROM STDIN;\n" . copy_rows($keep)));
}
load($shards[$_], 'lines', do { my $k = $_; sub { $_[0] % 10 != 0 && $_[0] % 2 == $k } }) for 0, 1;
load($coord, 'all_lines', sub { $_[0] % 10 != 0 });
load($coord, 'heldout', sub { $_[0] % 10 == 0 });

my $user = $coord->safe_psql('postgres', 'SELECT current_user');
my $setup = "CREATE EXTENSION postgres_fdw;\n";
for my $k (0, 1)
{
	my ($host, $port) = ($shards[$k]->host, $shards[$k]->port);
	$setup .=
	    "CREATE SERVER shard$k FOREIGN DATA WRAPPER postgres_fdw "
	  . "OPTIONS (host '$host', port '$port', dbname 'postgres', extensions 'rnnlm');\n"
	  . "CREATE USER MAPPING FOR CURRENT_USER SERVER shard$k OPTIONS (user '$user');\n";
}
$coord->safe_psql('postgres', $setup);
is( $shards[0]->safe_psql('postgres', 'SELECT count(*) FROM lines') +
	  $shards[1]->safe_psql('postgres', 'SELECT count(*) FROM lines'),
	$coord->safe_psql('postgres', 'SELECT count(*) FROM all_lines'),
	'the training lines are split between the shards');

my $options = q{{"tokenizer": "char", "cell": "lstm", "num_layers": 1, "hidden_size": 64,
                 "embedding_dim": 16, "batch_size": 16, "seq_len": 32, "epochs": 20,
                 "learning_rate": 0.01, "lr_decay": 0.5, "validation_fraction": 0.1, "seed": 5}};
my $servers = q{ARRAY['shard0', 'shard1']::name[]};

# Trains one way or the other; returns the summary.
sub train
{
	my ($sql) = @_;
	my $out = $coord->safe_psql('postgres', $sql);
	note($out);
	return decode_json($out);
}
my $central = train("SELECT rnnlm_train('central', 'SELECT line FROM all_lines ORDER BY id % 2, id', '$options')");
my $fed = train("SELECT rnnlm_train_federated('fed', $servers, 'SELECT line FROM lines ORDER BY id', '$options')");

# the held-out lines' loss of both, and their reported validation losses
sub heldout_loss
{
	my ($model) = @_;
	return decode_json($coord->safe_psql('postgres',
			"SELECT rnnlm_evaluate('$model', 'SELECT line FROM heldout')"))->{loss};
}
my ($lc, $lf) = (heldout_loss('central'), heldout_loss('fed'));
note(sprintf('held-out loss: central %.4f, federated %.4f', $lc, $lf));
cmp_ok(abs($lf - $lc), '<', 0.05,
	sprintf('federated training is within 0.05 nats of central training on held-out lines (%.4f vs %.4f)', $lf, $lc));
cmp_ok(abs($fed->{val_loss} - $central->{val_loss}), '<', 0.05,
	sprintf('and in the validation loss each reports (%.4f vs %.4f)', $fed->{val_loss}, $central->{val_loss}));
cmp_ok($lf, '<', 2.6, 'and it has learned (held-out loss below 2.6 nats per character)');

is($fed->{documents}, $central->{documents}, 'the summary counts every shard\'s documents');
is(join(',', map { $_->{server} } @{ $fed->{servers} }), 'shard0,shard1', 'and names the servers');
is($fed->{rounds}, $fed->{epochs_run}, 'a round is an epoch by default');
is($fed->{vocab_size}, $central->{vocab_size}, 'the vocabulary from the shards\' counts has the size of the central one');
my $history = $coord->safe_psql('postgres',
	q{SELECT count(*) FILTER (WHERE val_loss IS NOT NULL) || '/' || count(*) FROM rnnlm_training_history('fed')});
is($history, "$fed->{epochs_run}/$fed->{epochs_run}", 'every epoch has a validation loss in the history');

# what the coordinator sent to the shards: the federated functions and a version check only
for my $k (0, 1)
{
	my @stmts = grep { /^\[rnnlm_train_federated\] LOG:\s+(statement|execute [^:]*):/ } split /\n/,
	  slurp_file($shards[$k]->logfile);
	my @other = grep { !/: SELECT (extversion|.*rnnlm\.federated_(begin|start|train|evaluate|end)\()/ } @stmts;
	cmp_ok(scalar(@stmts), '>', 2 * $fed->{epochs_run}, "shard$k: the coordinator's statements are logged");
	is(scalar(@other), 0, "shard$k: every one is a federated call; no row is fetched")
	  or diag(join("\n", @other[ 0 .. ($#other < 4 ? $#other : 4) ]));
}

# an ordinary model: generation, and published back to a shard
cmp_ok($coord->safe_psql('postgres', q{SELECT length(rnnlm_generate('fed', 'The', 40, seed => 1))}),
	'>', 0, 'the federated model generates text');
is($coord->safe_psql('postgres', q{SELECT rnnlm_publish('fed', 'shard0')}), 't', 'and is published to a shard');
is($shards[0]->safe_psql('postgres', q{SELECT sha256 FROM rnnlm.models WHERE name = 'fed'}),
	$coord->safe_psql('postgres', q{SELECT sha256 FROM rnnlm.models WHERE name = 'fed'}),
	'with the same SHA-256');

# fine-tuning federated from the federated model: its vocabulary and
# weights, two more epochs at a lower rate
my $ft = train("SELECT rnnlm_train_federated('fed_ft', $servers, 'SELECT line FROM lines ORDER BY id', "
	  . q{'{"init_from": "fed", "epochs": 2, "learning_rate": 0.002, "batch_size": 16, "seq_len": 32, "seed": 5}')});
is($ft->{parent}, 'fed', 'init_from: the federated fine-tune names its parent');
is($ft->{vocab_size}, $fed->{vocab_size}, 'and keeps its vocabulary');
cmp_ok($ft->{val_loss}, '<', $fed->{val_loss} + 0.02,
	sprintf('and starts from its weights (validation loss %.4f after two epochs, %.4f before)', $ft->{val_loss}, $fed->{val_loss}));

# rounds of a few steps: more rounds than epochs, and the options say so
my $small = q{{"tokenizer": "char", "num_layers": 1, "hidden_size": 16, "embedding_dim": 8,
               "epochs": 2, "round_steps": 5, "seed": 1}};
my $r = train("SELECT rnnlm_train_federated('fed_rounds', $servers, 'SELECT line FROM lines', '$small')");
cmp_ok($r->{rounds}, '>', 2 * $r->{epochs_run}, "round_steps 5: $r->{rounds} rounds in $r->{epochs_run} epochs");
is($coord->safe_psql('postgres', q{SELECT options->>'round_steps' FROM rnnlm.models WHERE name = 'fed_rounds'}),
	'5', 'round_steps is recorded with the model');

# the other tokenizers: bpe merges and a capped word vocabulary learned
# from the summed counts; no validation rows anywhere
for my $tok (['bpe', 300, 0.1], ['word', 500, 0])
{
	my ($name, $max, $vf) = @$tok;
	my $o = qq{{"tokenizer": "$name", "max_vocab": $max, "validation_fraction": $vf, "num_layers": 1,
	            "hidden_size": 16, "embedding_dim": 8, "epochs": 1, "seed": 2}};
	my $c = train("SELECT rnnlm_train('c_$name', 'SELECT line FROM all_lines ORDER BY id % 2, id', '$o')");
	my $f = train("SELECT rnnlm_train_federated('f_$name', $servers, 'SELECT line FROM lines ORDER BY id', '$o')");
	is($f->{vocab_size}, $c->{vocab_size}, "$name: the federated vocabulary has the central one's size ($f->{vocab_size})");
	if ($vf > 0)
	{
		cmp_ok($f->{val_loss}, '<', $c->{val_loss} + 0.5, "$name: and it learns as the central model does");
	}
	else
	{
		ok(!defined $f->{val_loss} && !defined $f->{best_epoch}, "$name: without validation rows there is no validation loss");
	}
}

# errors
sub error_of
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $coord->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return $err;
}
like(error_of("SELECT rnnlm_train_federated('x', $servers, 'SELECT line FROM no_such_table')"),
	qr/42P01: on server "shard0": relation "no_such_table" does not exist/,
	'a shard\'s error names its server and keeps its SQLSTATE');
like(error_of(q{SELECT rnnlm_train_federated('x', ARRAY['shard0', 'shard0']::name[], 'SELECT line FROM lines')}),
	qr/22023: server "shard0" is named twice/, 'a server named twice is refused');
like(error_of(q{SELECT rnnlm_train_federated('x', ARRAY[]::name[], 'SELECT line FROM lines')}),
	qr/22023: servers must name at least one foreign server/, 'so is no server');
like(error_of(q{SELECT rnnlm_train_federated('x', ARRAY['nowhere']::name[], 'SELECT line FROM lines')}),
	qr/server "nowhere" does not exist/, 'and an unknown one');
like(error_of("SELECT rnnlm_train_federated('x', $servers, 'SELECT line FROM lines', '{\"init_from\": \"fed\", \"hidden_size\": 8}')"),
	qr/22023: rnnlm option "hidden_size" does not match the model "fed" to fine-tune from/,
	'init_from takes the parent\'s architecture, as in rnnlm_train');
like(error_of("SELECT rnnlm_train_federated('fed', $servers, 'SELECT line FROM lines')"),
	qr/42710: rnnlm model "fed" already exists/, 'an existing name needs replace');
like(error_of(q{SELECT rnnlm_train('x', 'SELECT line FROM all_lines', '{"round_steps": 3}')}),
	qr/22023: rnnlm option "round_steps" is for rnnlm_train_federated/, 'rnnlm_train refuses round_steps');
is($shards[0]->safe_psql('postgres',
		q{SELECT count(*) FROM rnnlm.models WHERE name IN ('x', 'fed_rounds')}),
	'0', 'nothing is stored on the shards');

# as a background job: progress in rnnlm.jobs, rnnlm_wait's summary, no resume
my $job = $coord->safe_psql('postgres',
	"SELECT rnnlm_train_federated_async('fed_job', $servers, 'SELECT line FROM lines', '$small')");
my $js = decode_json($coord->safe_psql('postgres', "SELECT rnnlm_wait($job, '120 s')"));
is($js->{model}, 'fed_job', 'a federated job: rnnlm_wait returns its summary');
is(join(',', map { $_->{server} } @{ $js->{servers} }), 'shard0,shard1', 'with the servers');
is($coord->safe_psql('postgres',
		"SELECT state || ' ' || epoch || '/' || epochs || ' ' || array_to_string(servers, ',') || ' ' || (SELECT count(*) FROM rnnlm_training_history(${job}::bigint)) FROM rnnlm.jobs WHERE id = $job"),
	'succeeded 2/2 shard0,shard1 2', 'rnnlm.jobs shows its epochs, servers and history');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM rnnlm.models WHERE name = 'fed_job'}), '1',
	'and the model is stored');
like(error_of("SELECT rnnlm_resume($job)"), qr/0A000: rnnlm job \d+ is a federated training, which cannot be resumed/,
	'a federated job is not resumed');
like(error_of(q{SELECT rnnlm_train_federated_async('x', ARRAY['nowhere']::name[], 'SELECT line FROM lines')}),
	qr/42704: server "nowhere" does not exist/, 'an unknown server is refused when the job is submitted');
my $long_job = $coord->safe_psql('postgres',
	"SELECT rnnlm_train_federated_async('long_job', $servers, 'SELECT line FROM lines', "
	  . q{'{"tokenizer": "char", "num_layers": 1, "hidden_size": 256, "embedding_dim": 64, "epochs": 1000}')});
ok($shards[0]->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%rnnlm.federated_train(%' AND state = 'active'}),
	'the job trains on the shards');
is($coord->safe_psql('postgres', "SELECT rnnlm_cancel($long_job)"), 't', 'rnnlm_cancel stops the federated job');
like(error_of("SELECT rnnlm_wait($long_job, '60 s')"), qr/57014/, 'which ends cancelled');
for my $k (0, 1)
{
	ok($shards[$k]->poll_query_until('postgres',
			q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'rnnlm_train_federated'}),
		"shard$k: the job's session ends too");
}

# a role that is not a superuser needs a password in its user mapping
$coord->safe_psql('postgres', q{
CREATE ROLE trainer;
GRANT USAGE ON FOREIGN SERVER shard0 TO trainer;
CREATE USER MAPPING FOR trainer SERVER shard0 OPTIONS (user 'trainer')});
like(error_of(q{SET ROLE trainer; SELECT rnnlm_train_federated('x', ARRAY['shard0']::name[], 'SELECT line FROM lines')}),
	qr/2F003: password is required/, 'a role that is not a superuser needs a password in its user mapping');

# a cancel (statement_timeout) on the coordinator cancels the shards' work
my $long = q{{"tokenizer": "char", "num_layers": 1, "hidden_size": 256, "embedding_dim": 64, "epochs": 1000}};
like(error_of("SET statement_timeout = '3s'; SELECT rnnlm_train_federated('long', $servers, 'SELECT line FROM lines', '$long')"),
	qr/57014: canceling statement due to statement timeout/, 'a statement timeout cancels the training');
for my $k (0, 1)
{
	ok($shards[$k]->poll_query_until('postgres',
			q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'rnnlm_train_federated'}),
		"shard$k: its session ends too");
}
is($coord->safe_psql('postgres', q{SELECT count(*) FROM rnnlm.models WHERE name = 'long'}), '0',
	'and nothing is stored');

done_testing();
