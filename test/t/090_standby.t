# Streaming replication: models trained on a primary reach a hot standby,
# where they score, generate, evaluate and export exactly as on the primary;
# training, dropping, importing and granting fail there cleanly with a
# read-only error (SQLSTATE 25006) and the standby keeps running.  A model
# replaced or dropped on the primary is noticed by a standby session that
# had the old one cached.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

# RnnlmTest::new_node does not enable streaming, so the primary is set up
# here the same way, with allows_streaming.
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', <<'CONF');
shared_buffers = 32MB
max_connections = 20
lc_messages = 'C'
CONF
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION rnnlm');

$primary->safe_psql('postgres', q{
CREATE TABLE corpus AS
  SELECT 'ticket ' || i || ' says the printer on floor ' || (i % 5)
         || ' is out of paper' AS body
    FROM generate_series(1, 150) i;
CREATE TABLE heldout AS
  SELECT 'the printer on floor ' || i || ' needs paper' AS body
    FROM generate_series(1, 20) i;
});

my $tiny = '"embedding_dim": 8, "hidden_size": 16, "num_layers": 1, "epochs": 2';

sub train
{
	my ($node, $name, $extra) = @_;
	$extra = defined $extra ? ", $extra" : '';
	return $node->safe_psql('postgres', qq{
SET client_min_messages = warning;
SELECT rnnlm_train('$name', 'SELECT body FROM corpus', '{$tiny$extra}')->>'model'});
}

is(train($primary, 'wl'), 'wl', 'primary: word LSTM wl trained');
is(train($primary, 'cg', '"cell": "gru", "tokenizer": "char"'), 'cg',
	'primary: char GRU cg trained');

# A model trained after the base backup travels only through the WAL stream.
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
is(train($primary, 'rn', '"cell": "rnn", "seed": 4'), 'rn',
	'primary: rnn model rn trained after the base backup');
$primary->safe_psql('postgres', q{SELECT rnnlm_grant('rn', 'PUBLIC')});
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

# The same queries on both nodes must give the same output.
my %same = (
	'rnnlm.models' => q{
SELECT name, owner, granted_to, cell, tokenizer, vocab_size, parameters, size_bytes,
       train_loss, val_loss, created_at, options
  FROM rnnlm.models ORDER BY name},
	'weights' => q{SELECT name, revision, md5(weights) FROM rnnlm.model ORDER BY name},
	'perplexity' => q{
SELECT m.name, t.i, rnnlm_perplexity(m.name, t.x)
  FROM rnnlm.models m,
       (VALUES (1, 'ticket 4 says the printer is out of paper'),
               (2, 'floor 3'),
               (3, 'zebras eat purple printers')) t(i, x)
 ORDER BY m.name, t.i},
	'batch perplexity' => q{
SELECT name, rnnlm_perplexity(name, ARRAY['ticket 1 says', NULL, 'out of paper'])
  FROM rnnlm.models ORDER BY name},
	'token logprobs' => q{
SELECT position, token_id, token, logprob
  FROM rnnlm_token_logprobs('wl', 'the printer on floor 9 is out of ink')},
	'greedy generation' => q{
SELECT name, rnnlm_generate(name, 'the printer', 20, 0.0, 0, 1.0, 7)
  FROM rnnlm.models ORDER BY name},
	'sampled generation' => q{
SELECT name, rnnlm_generate(name, 'ticket', 20, 0.9, 5, 0.95, 123)
  FROM rnnlm.models ORDER BY name},
	'evaluate' => q{
SELECT name, rnnlm_evaluate(name, 'SELECT body FROM heldout')
  FROM rnnlm.models ORDER BY name},
	'export' => q{SELECT md5(rnnlm_export('cg'))});
for my $what (sort keys %same)
{
	my $p = $primary->safe_psql('postgres', $same{$what});
	my $s = $standby->safe_psql('postgres', $same{$what});
	isnt($p, '', "primary: $what gives output");
	is($s, $p, "standby: same $what as the primary");
}
like($standby->safe_psql('postgres', q{SELECT string_agg(name, ',' ORDER BY name) FROM rnnlm.models}),
	qr/^cg,rn,wl$/, 'standby: rnnlm.models lists the three models');
like($standby->safe_psql('postgres',
		q{SELECT rnnlm_evaluate('wl', 'SELECT body FROM heldout') ?& ARRAY['documents', 'tokens', 'perplexity', 'accuracy']}),
	qr/^t$/, 'standby: rnnlm_evaluate returns its summary');

# Writes fail with a read-only error, and the standby carries on.
my $export = $primary->safe_psql('postgres', q{SELECT rnnlm_export('wl')});
my %writes = (
	'rnnlm_train' => [
		q{SELECT rnnlm_train('new', 'SELECT body FROM corpus', '{"epochs": 1}')},
		qr/cannot execute rnnlm_train\(\) in a read-only transaction/
	],
	'rnnlm_train replace' => [
		q{SELECT rnnlm_train('wl', 'SELECT body FROM corpus', '{"epochs": 1, "replace": true}')},
		qr/read-only transaction/
	],
	'rnnlm_drop' => [ q{SELECT rnnlm_drop('wl')}, qr/read-only transaction/ ],
	'rnnlm_drop if_exists' =>
	  [ q{SELECT rnnlm_drop('nothing', if_exists => true)}, qr/read-only transaction/ ],
	'rnnlm_import' => [
		qq{SELECT rnnlm_import('imp', '$export'::bytea)},
		qr/cannot execute rnnlm_import\(\) in a read-only transaction/
	],
	'rnnlm_import replace' =>
	  [ qq{SELECT rnnlm_import('wl', '$export'::bytea, true)}, qr/read-only transaction/ ],
	'rnnlm_grant' => [ q{SELECT rnnlm_grant('wl', 'PUBLIC')}, qr/read-only transaction/ ],
	'rnnlm_revoke' => [ q{SELECT rnnlm_revoke('rn', 'PUBLIC')}, qr/read-only transaction/ ]);
for my $what (sort keys %writes)
{
	my ($sql, $msg) = @{ $writes{$what} };
	my ($ret, $out, $err) = $standby->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	isnt($ret, 0, "standby: $what fails");
	like($err, qr/ERROR:  25006: /, "standby: $what fails with SQLSTATE 25006")
	  or diag($err);
	like($err, $msg, "standby: $what says why");
}
is($standby->safe_psql('postgres', q{SELECT string_agg(name || ' ' || granted_to::text, ',' ORDER BY name) FROM rnnlm.models}),
	'cg {},rn {PUBLIC},wl {}', 'standby: the models are unchanged after the failed writes');
ok(!$standby->log_contains(qr/terminated by signal|server process .* was terminated/),
	'standby: no backend crashed');
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is still streaming');

# A standby session that has wl cached notices a replacement on the primary.
my $session = $standby->background_psql('postgres', on_error_stop => 0);
my $text = 'the printer on floor 2 is out of paper';
my $old = $session->query_safe(qq{SELECT rnnlm_perplexity('wl', '$text')});
is($old, $primary->safe_psql('postgres', qq{SELECT rnnlm_perplexity('wl', '$text')}),
	'standby session: wl loaded, same perplexity as the primary');
is(train($primary, 'wl', '"replace": true, "seed": 99, "epochs": 1'), 'wl',
	'primary: wl replaced with another seed');
$primary->wait_for_catchup($standby);
my $new_primary = $primary->safe_psql('postgres', qq{SELECT rnnlm_perplexity('wl', '$text')});
isnt($new_primary, $old, 'primary: the replaced wl scores differently');
my $new = $session->query_safe(qq{SELECT rnnlm_perplexity('wl', '$text')});
is($new, $new_primary, 'standby session: the next statement sees the replaced wl');
is($session->query_safe(q{SELECT rnnlm_generate('wl', 'ticket', 15, 0.0, 0, 1.0, 7)}),
	$primary->safe_psql('postgres', q{SELECT rnnlm_generate('wl', 'ticket', 15, 0.0, 0, 1.0, 7)}),
	'standby session: greedy generation follows the replacement too');
is($session->query_safe(q{SELECT weights_md5 FROM (SELECT md5(weights) AS weights_md5 FROM rnnlm.model WHERE name = 'wl') s}),
	$primary->safe_psql('postgres', q{SELECT md5(weights) FROM rnnlm.model WHERE name = 'wl'}),
	'standby session: the replaced weights arrived');

# ... and a drop on the primary.
$primary->safe_psql('postgres', q{SELECT rnnlm_drop('cg')});
$primary->wait_for_catchup($standby);
my ($out, $failed) = $session->query(q{SELECT rnnlm_perplexity('cg', 'the printer')});
ok($failed && $session->{stderr} =~ /rnnlm model "cg" does not exist/,
	'standby session: a model dropped on the primary no longer exists')
  or diag("stdout: $out, stderr: $session->{stderr}");
$session->{stderr} = '';
is($session->query_safe(q{SELECT string_agg(name, ',' ORDER BY name) FROM rnnlm.models}),
	'rn,wl', 'standby session: rnnlm.models follows the drop');
$session->quit;

$standby->stop;
$primary->stop;
done_testing();
