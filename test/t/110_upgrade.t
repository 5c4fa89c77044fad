# Upgrading from 0.1 to 0.2 and on to 0.3 (ALTER EXTENSION rnnlm UPDATE)
# keeps every model and what it computes, keeps row-level security, ends
# with 0.3's grants (no role but the extension's owner writes rnnlm's
# tables), and gives the same schema as a fresh 0.3 install; model files of
# format version 1 kept in test/fixtures/ still load and score the same.
#
# In the database old: the extension at 0.1, models trained by a
# non-superuser (word and char, lstm, gru and rnn), one imported, one granted
# to another role; then the update, after which the perplexities, greedy
# text, weights and rnnlm.models rows are the same, the grants and the
# visibility hold, and the functions new in 0.2 (fine-tuning with init_from,
# rnnlm_train_async/rnnlm_wait, rnnlm_training_history, rnnlm_tune) work on
# the old models.  Then the catalog of fresh (CREATE EXTENSION rnnlm) is
# compared, section by section, with that of stepped (0.1, then UPDATE), of
# old, and of v02 (created at 0.2 with numbered versions, one dropped, then
# updated: its version numbers go on from the highest ever used); old then
# dumps and restores, and stepped drops cleanly.
use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use File::Temp qw(tempfile);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $node = RnnlmTest::new_node('upgrade');

# Runs SQL in a database, as the superuser or connected as a role, quietly.
sub sql
{
	my ($db, $role, $query) = @_;
	my @as = $role eq 'super' ? () : (extra_params => [ '-U', $role ]);
	return $node->safe_psql($db, "SET client_min_messages = warning;\n$query", @as);
}

# Runs SQL that should fail; returns its stderr.
sub sql_error
{
	my ($db, $role, $query) = @_;
	my @as = $role eq 'super' ? () : (extra_params => [ '-U', $role ]);
	my ($ret, $out, $err) = $node->psql($db, $query, @as);
	return $ret == 0 ? "succeeded: $out" : $err;
}

$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE carol LOGIN;
CREATE DATABASE old;
CREATE DATABASE fresh;
CREATE DATABASE stepped;
CREATE DATABASE v02;
});

# ---------------------------------------------------------------- 0.1

$node->safe_psql('old', q{
CREATE EXTENSION rnnlm VERSION '0.1';
CREATE TABLE corpus AS
  SELECT 'ticket ' || i || ' says the printer on floor ' || (i % 5)
         || ' is out of paper' AS body
    FROM generate_series(1, 150) i;
GRANT SELECT ON corpus TO alice, bob;
});
is(sql('old', 'super', q{SELECT extversion FROM pg_extension WHERE extname = 'rnnlm'}),
	'0.1', 'old: the extension is created at version 0.1');
is(sql('old', 'super', q{
SELECT count(*) FROM pg_proc
 WHERE proname IN ('rnnlm_train_async', 'rnnlm_wait', 'rnnlm_training_history', 'rnnlm_tune')}),
	'0', 'old: 0.1 has none of the functions of 0.2');
is(sql('old', 'super', q{
SELECT string_agg(attname, ',') FROM pg_attribute
 WHERE attrelid = 'rnnlm.model'::regclass AND attname IN ('parent', 'history')}),
	'', 'old: rnnlm.model has neither parent nor history');

my $tiny = '"hidden_size": 16, "embedding_dim": 8, "num_layers": 1, "epochs": 2';
my %models = (
	w_lstm => '"cell": "lstm", "tokenizer": "word"',
	w_rnn  => '"cell": "rnn", "tokenizer": "word", "seed": 9',
	c_gru  => '"cell": "gru", "tokenizer": "char", "seed": 3',
	c_lstm => '"cell": "lstm", "tokenizer": "char", "seed": 5',
	c_rnn  => '"cell": "rnn", "tokenizer": "char"');
for my $name (sort keys %models)
{
	is(sql('old', 'alice', qq{
SELECT rnnlm_train('$name', 'SELECT body FROM corpus', '{$tiny, $models{$name}}')->>'model'}),
		$name, "old: alice trains $name ($models{$name}) on 0.1");
}
is(sql('old', 'alice', q{SELECT rnnlm_import('w_lstm_copy', rnnlm_export('w_lstm'))->>'model'}),
	'w_lstm_copy', 'old: alice imports the export of w_lstm as w_lstm_copy');
sql('old', 'alice', q{SELECT rnnlm_grant('c_gru', 'bob')});

# The model file of format version 1 kept in test/fixtures/.
my $fixdir = RnnlmTest::repo() . '/test/fixtures';
my $fixture = decode_json(slurp_file("$fixdir/model_v1_char_lstm.json"));
my $fixhex = slurp_file("$fixdir/$fixture->{file}");
$fixhex =~ s/\s+//g;
is(md5_hex(pack('H*', $fixhex)), $fixture->{md5}, 'the fixture file has the md5 it records');
is(substr($fixhex, 16, 8), '01000000', 'and is of format version 1');
is(sql('old', 'alice', qq{SELECT rnnlm_import('fixture_v1', decode('$fixhex', 'hex'))->>'model'}),
	'fixture_v1', 'old: alice imports the fixture model file on 0.1');

my @texts = (
	'ticket 7 says the printer is out of paper',
	'the printer on floor 2',
	'zebras quietly eat purple paper');
my $values = join(",\n", map { "($_, '$texts[$_ - 1]')" } 1 .. @texts);

# What every model a role can use computes, as that role.
sub outputs
{
	my ($role) = @_;
	my %o;
	$o{perplexity} = sql('old', $role, qq{
SELECT m.name, t.i, rnnlm_perplexity(m.name, t.x)
  FROM rnnlm.models m, (VALUES $values) t(i, x)
 ORDER BY m.name COLLATE "C", t.i});
	$o{batch} = sql('old', $role, q{
SELECT name, rnnlm_perplexity(name, ARRAY['ticket 9 says', 'out of paper', NULL])
  FROM rnnlm.models ORDER BY name COLLATE "C"});
	$o{generate} = sql('old', $role, q{
SELECT name, rnnlm_generate(name, 'the printer', 12, 0.0, 0, 1.0, 7)
  FROM rnnlm.models ORDER BY name COLLATE "C"});
	$o{logprobs} = sql('old', $role, q{
SELECT m.name, sum(l.logprob), count(*)
  FROM rnnlm.models m, rnnlm_token_logprobs(m.name, 'the printer on floor 3') l
 GROUP BY m.name ORDER BY m.name COLLATE "C"});
	return \%o;
}

my $rows_sql = q{
SELECT name, owner, coalesce(to_jsonb(m)->>'revision', to_jsonb(m)->>'version'), cell, tokenizer,
       vocab_size, embedding_dim, hidden_size, num_layers, parameters, train_loss, val_loss,
       val_perplexity, trained_tokens, options, created_at, grantees, md5(weights), octet_length(weights)
  FROM rnnlm.model m ORDER BY name COLLATE "C"};
my $models_sql = q{
SELECT name, owner, cell, tokenizer, vocab_size, val_loss, granted_to%s
  FROM rnnlm.models ORDER BY name COLLATE "C"};
my $visible_sql = q{SELECT string_agg(name, ',' ORDER BY name COLLATE "C") FROM rnnlm.models};
my @all = sort(keys %models, 'w_lstm_copy', 'fixture_v1');

my %before = (
	alice  => outputs('alice'),
	bob    => outputs('bob'),
	rows   => sql('old', 'super', $rows_sql),
	models => sql('old', 'super', sprintf($models_sql, '')),
	bob_visible   => sql('old', 'bob', $visible_sql),
	carol_visible => sql('old', 'carol', $visible_sql));
is(sql('old', 'alice', $visible_sql), join(',', @all), 'old: alice sees her models');
is($before{bob_visible}, 'c_gru', 'old: bob sees only c_gru, granted to him');
is($before{carol_visible}, '', 'old: carol sees no model');
like($before{models}, qr/^c_gru\|alice\|gru\|char\|\d+\|[-0-9.e]+\|\{bob\}$/m,
	'old: c_gru is alice\'s char GRU, granted to bob');
like($before{models}, qr/^fixture_v1\|alice\|lstm\|char\|23\|\|\{\}$/m,
	'old: the fixture is a char LSTM with 23 tokens');
is(scalar(() = $before{alice}{perplexity} =~ /\n/g) + 1, 3 * @all,
	'old: alice scores every text with every model');
like($before{bob}{perplexity}, qr/\Ac_gru\|1\|[0-9.e+]+\nc_gru\|2\|[0-9.e+]+\nc_gru\|3\|[0-9.e+]+\z/,
	'old: bob scores the texts with c_gru');
my ($copy_md5, $orig_md5) = map {
	sql('old', 'super', "SELECT md5(weights) FROM rnnlm.model WHERE name = '$_'")
} qw(w_lstm_copy w_lstm);
is($copy_md5, $orig_md5, 'old: the imported copy has the weights of w_lstm');
like(sql_error('old', 'bob', q{SELECT rnnlm_perplexity('w_lstm', 'the printer')}),
	qr/rnnlm model "w_lstm" does not exist/, 'old: bob cannot use w_lstm');
is(sql('old', 'super', q{
SELECT 'security_invoker=true' = ANY (reloptions) FROM pg_class WHERE oid = 'rnnlm.models'::regclass}),
	't', 'old: rnnlm.models is security_invoker');

# ---------------------------------------------------------------- the update

sql('old', 'super', "ALTER EXTENSION rnnlm UPDATE TO '0.2'");
is(sql('old', 'super', q{SELECT extversion FROM pg_extension WHERE extname = 'rnnlm'}),
	'0.2', "old: ALTER EXTENSION rnnlm UPDATE TO '0.2' brings it to 0.2");

for my $role (qw(alice bob))
{
	my $after = outputs($role);
	for my $key (sort keys %$after)
	{
		is($after->{$key}, $before{$role}{$key},
			"old: after the update, $role gets the same $key from every model");
	}
}
is(sql('old', 'super', $rows_sql), $before{rows},
	'old: rnnlm.model rows (revisions, metadata, grantees, md5 of the weights) are unchanged');
is(sql('old', 'super', q{
SELECT count(*) FILTER (WHERE v.version = 1 AND v.sha256 = encode(sha256(m.weights), 'hex')
                          AND v.keep_versions = 1),
       count(*)
  FROM rnnlm.models v JOIN rnnlm.model m USING (name)}),
	scalar(@all) . '|' . scalar(@all),
	'old: every 0.1 model is version 1, with the SHA-256 of its model file');
is(sql('old', 'alice', q{SELECT rnnlm_perplexity('c_gru@1', 'the printer') = rnnlm_perplexity('c_gru', 'the printer')}),
	't', 'old: and can be named as such');
is(sql('old', 'super', sprintf($models_sql, ', parent')),
	join("\n", map { "$_|" } split /\n/, $before{models}),
	'old: rnnlm.models has the same rows, with parent NULL');
is(sql('old', 'super', q{
SELECT count(*) FILTER (WHERE parent IS NULL AND history = '[]'), count(*) FROM rnnlm.model}),
	scalar(@all) . '|' . scalar(@all), 'old: every old model has no parent and an empty history');
is(sql('old', 'alice', q{SELECT count(*) FROM rnnlm_training_history('w_lstm')}), '0',
	'old: rnnlm_training_history of an old model has no rows');

# row-level security after the update
is(sql('old', 'bob', $visible_sql), 'c_gru', 'old: bob still sees only c_gru');
is(sql('old', 'bob', q{SELECT string_agg(name, ',') FROM rnnlm.model}), 'c_gru',
	'old: and reads only its row from rnnlm.model');
is(sql('old', 'carol', $visible_sql), '', 'old: carol still sees no model');
like(sql_error('old', 'bob', q{SELECT rnnlm_perplexity('w_lstm', 'the printer')}),
	qr/rnnlm model "w_lstm" does not exist/, 'old: bob still cannot use w_lstm');
like(sql_error('old', 'bob', q{SELECT rnnlm_export('w_rnn')}),
	qr/rnnlm model "w_rnn" does not exist/, 'old: nor export w_rnn');
like(sql_error('old', 'bob', q{SELECT rnnlm_drop('c_gru')}),
	qr/must be owner of rnnlm model "c_gru"/, 'old: nor drop the model granted to him');
is(sql('old', 'super', q{
SELECT string_agg(oid::regclass::text || ' ' || ('security_invoker=true' = ANY (reloptions)),
                  ', ' ORDER BY oid::regclass::text)
  FROM pg_class WHERE oid IN ('rnnlm.models'::regclass, 'rnnlm.jobs'::regclass)}),
	'rnnlm.jobs true, rnnlm.models true',
	'old: rnnlm.models and rnnlm.jobs are security_invoker views');
is(sql('old', 'super', q{
SELECT string_agg(relname || ' ' || relrowsecurity, ', ' ORDER BY relname)
  FROM pg_class WHERE oid IN ('rnnlm.model'::regclass, 'rnnlm.job'::regclass)}),
	'job true, model true', 'old: rnnlm.model and rnnlm.job have row-level security');
sql('old', 'alice', q{SELECT rnnlm_grant('w_rnn', 'carol')});
is(sql('old', 'carol', $visible_sql), 'w_rnn', 'old: a grant made after the update works');
sql('old', 'alice', q{SELECT rnnlm_revoke('w_rnn', 'carol')});
is(sql('old', 'carol', $visible_sql), '', 'old: and so does a revoke');

# the functions of 0.2 on the old models
is(sql('old', 'alice', q{
SELECT rnnlm_train('w_lstm_ft', 'SELECT body FROM corpus', '{"init_from": "w_lstm", "epochs": 1}')->>'model';
SELECT parent, cell, tokenizer, vocab_size = (SELECT vocab_size FROM rnnlm.models WHERE name = 'w_lstm')
  FROM rnnlm.models WHERE name = 'w_lstm_ft';
SELECT count(*) FROM rnnlm_training_history('w_lstm_ft')}),
	"w_lstm_ft\nw_lstm|lstm|word|t\n1",
	'old: alice fine-tunes w_lstm: parent w_lstm, its cell and vocabulary, one epoch of history');
is(sql('old', 'bob', q{
SELECT rnnlm_train('bob_ft', 'SELECT body FROM corpus', '{"init_from": "c_gru", "epochs": 1}')->>'model';
SELECT owner, parent, cell FROM rnnlm.models WHERE name = 'bob_ft'}),
	"bob_ft\nbob|c_gru|gru", 'old: bob fine-tunes c_gru, granted to him');
like(sql_error('old', 'bob', q{
SELECT rnnlm_train('bob_ft2', 'SELECT body FROM corpus', '{"init_from": "w_lstm", "epochs": 1}')}),
	qr/rnnlm model "w_lstm" does not exist/, 'old: but not w_lstm, which he cannot use');

my $job = sql('old', 'alice', qq{
SELECT rnnlm_train_async('c_async', 'SELECT body FROM corpus', '{$tiny, "tokenizer": "char", "cell": "gru"}')});
like($job, qr/^\d+$/, "old: alice starts a training job ($job)");
is(sql('old', 'alice', qq{SELECT rnnlm_wait($job, '120 s')->>'model'}), 'c_async',
	'old: rnnlm_wait returns its summary');
is(sql('old', 'alice', qq{
SELECT state, model FROM rnnlm.jobs WHERE id = $job;
SELECT owner, cell, tokenizer FROM rnnlm.models WHERE name = 'c_async';
SELECT count(*) FROM rnnlm_training_history('c_async');
SELECT count(*) FROM rnnlm_training_history(${job}::bigint)}),
	"succeeded|c_async\nalice|gru|char\n2\n2",
	'old: the job succeeded, stored c_async with two epochs of history');
is(sql('old', 'bob', q{SELECT count(*) FROM rnnlm.jobs}), '0', 'old: bob does not see alice\'s job');
is(sql('old', 'bob', qq{SELECT rnnlm_forget($job)}), 'f', 'old: nor can he forget it');
is(sql('old', 'alice', qq{SELECT rnnlm_forget($job); SELECT count(*) FROM rnnlm.jobs}), "t\n0",
	'old: alice forgets her finished job');
is(sql('old', 'alice', q{
SELECT count(*), count(*) FILTER (WHERE chosen)
  FROM rnnlm_tune('w_tuned', 'SELECT body FROM corpus', '{"hidden_size": [8, 16]}',
                  '{"embedding_dim": 8, "num_layers": 1, "epochs": 1}');
SELECT cell, parent IS NULL FROM rnnlm.models WHERE name = 'w_tuned'}),
	"2|1\nlstm|t", 'old: rnnlm_tune tries two sizes and stores the best');
is(sql('old', 'super', q{
SELECT md5(weights) FROM rnnlm.model WHERE name = 'w_lstm'}), $orig_md5,
	'old: w_lstm itself is unchanged by the fine-tuning');
like(sql('old', 'alice', q{
SELECT count(*), abs(sum(probability) - 1) < 1e-6 FROM rnnlm_next_tokens('c_gru', 'the pr', 1000);
SELECT array_length(rnnlm_embed('c_gru', 'the printer'), 1) = hidden_size
  FROM rnnlm.models WHERE name = 'c_gru';
SELECT rnnlm_classify(ARRAY['c_gru', 'fixture_v1'], 'the cat sat on the mat number 2');
SELECT count(*), abs(sum(probability) - 1) < 1e-9
  FROM rnnlm_classify_scores(ARRAY['w_lstm', 'c_gru'], 'the printer')}),
	qr/^\d+\|t\nt\nfixture_v1\n2\|t$/,
	'old: next tokens, embeddings and classification work on the old models');
is(join("\n", grep { !/^(?:c_async|w_lstm_ft|w_tuned)\|/ } split /\n/, outputs('alice')->{perplexity}),
	$before{alice}{perplexity}, 'old: the old models still give the same perplexities');

# ---------------------------------------------------------------- on to 0.3

# The privileges PUBLIC holds on rnnlm's tables and sequences.
my $public_privs = q{
SELECT string_agg(c.relname || ' ' || array_to_string(ARRAY(
         SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
          WHERE c.relkind = 'r' AND has_table_privilege('public', c.oid, p)
         UNION ALL
         SELECT p FROM unnest(ARRAY['SELECT', 'USAGE', 'UPDATE']) p
          WHERE c.relkind = 'S' AND has_sequence_privilege('public', c.oid, p)), ','),
       '; ' ORDER BY c.relname)
  FROM pg_class c WHERE c.relnamespace = 'rnnlm'::regnamespace AND c.relkind IN ('r', 'S')};
like(sql('old', 'super', $public_privs), qr/\bmodel SELECT,INSERT,UPDATE,DELETE\b/, 'old: at 0.2, PUBLIC may write rnnlm.model');
sql('old', 'super', 'ALTER EXTENSION rnnlm UPDATE');
is(sql('old', 'super', q{SELECT extversion FROM pg_extension WHERE extname = 'rnnlm'}),
	'0.3', 'old: ALTER EXTENSION rnnlm UPDATE then brings it to 0.3');
my $new_grants = 'job SELECT; job_id_seq SELECT; model SELECT; model_revision_seq SELECT; '
  . 'model_version SELECT; training_query SELECT; version_counter ';
is(sql('old', 'super', $public_privs), $new_grants,
	'old: at 0.3 PUBLIC only reads the tables (and no sequence gives it a value)');
like(sql_error('old', 'alice', q{UPDATE rnnlm.model SET grantees = '{}' WHERE name = 'c_gru'}),
	qr/permission denied for table model/, 'old: alice can no longer change her model rows by hand');
for my $role (qw(alice bob))
{
	my $after = outputs($role);
	is(join("\n", grep { !/^(?:c_async|w_lstm_ft|w_tuned|bob_ft)\|/ } split /\n/, $after->{perplexity}),
		$before{$role}{perplexity}, "old: after the update to 0.3, $role gets the same perplexities");
}
is(sql('old', 'bob', $visible_sql), 'bob_ft,c_gru', 'old: bob sees his model and c_gru');
sql('old', 'alice', q{SELECT rnnlm_grant('w_rnn', 'carol')});
is(sql('old', 'carol', $visible_sql), 'w_rnn', 'old: rnnlm_grant (now in C) works on an old model');
sql('old', 'alice', q{SELECT rnnlm_revoke('w_rnn', 'carol')});
is(sql('old', 'carol', $visible_sql), '', 'old: and rnnlm_revoke');
is(sql('old', 'alice', q{
SELECT rnnlm_train('c_gru', 'SELECT body FROM corpus', '{"init_from": "c_gru", "epochs": 1, "replace": true}')->>'model';
SELECT string_agg(version::text || current::text, ',' ORDER BY version) FROM rnnlm.model_versions WHERE name = 'c_gru';
SELECT granted_to FROM rnnlm.models WHERE name = 'c_gru'}),
	"c_gru\n1false,2true\n{bob}", 'old: replacing a 0.1 model makes version 2, with its grants');
like(sql_error('old', 'alice', q{SELECT rnnlm_surprise_percentile('w_rnn', 'the printer')}),
	qr/rnnlm model "w_rnn" has no calibration of its surprise/,
	'old: a model trained before 0.3 has no surprise calibration (55000)');
is(sql('old', 'alice', q{
SELECT rnnlm_surprise_percentile('c_gru', 'the printer') BETWEEN 0 AND 1,
       (SELECT string_agg(name || ' ' || calibrated, ',' ORDER BY name) FROM rnnlm.models
         WHERE name IN ('c_gru', 'w_rnn'))}),
	't|c_gru true,w_rnn false', 'old: retrained at 0.3, it has one, and rnnlm.models says which do');
is(sql('old', 'alice', q{
SELECT string_agg(version || ' ' || COALESCE(provenance->>'trained_by', '-') || ' ' || (training_query IS NOT NULL), ','
                  ORDER BY version)
  FROM rnnlm.model_versions WHERE name = 'c_gru'}),
	'1 - false,2 alice true', 'old: a version made before 0.3 has no provenance; one made after has it, with its query');
like(sql_error('old', 'alice', q{SELECT rnnlm_retrain('w_rnn')}), qr/rnnlm model "w_rnn" has no training query to retrain on/,
	'old: a model trained before 0.3 cannot be retrained as before (55000)');
is(sql('old', 'alice', q{SELECT rnnlm_retrain('c_gru')->>'model';
SELECT version FROM rnnlm.models WHERE name = 'c_gru'}), "c_gru\n3", 'old: its version made at 0.3 can (version 3)');
$job = sql('old', 'alice', qq{
SELECT rnnlm_train_async('c_async3', 'SELECT body FROM corpus', '{$tiny, "tokenizer": "char"}')});
is(sql('old', 'alice', qq{SELECT rnnlm_wait($job, '120 s')->>'model'}), 'c_async3',
	'old: a training job runs at 0.3');

# ---------------------------------------------------------------- created at 0.2

$node->safe_psql('v02', q{
CREATE EXTENSION rnnlm VERSION '0.2';
CREATE TABLE corpus AS
  SELECT 'ticket ' || i || ' says the printer on floor ' || (i % 5) || ' is out of paper' AS body
    FROM generate_series(1, 150) i;
GRANT SELECT ON corpus TO alice, bob;
});
is(sql('v02', 'alice', qq{
SELECT rnnlm_train('v', 'SELECT body FROM corpus', '{$tiny, "tokenizer": "char", "keep_versions": 5}')->>'model';
SELECT rnnlm_train('v', 'SELECT body FROM corpus', '{$tiny, "tokenizer": "char", "seed": 2, "replace": true, "keep_versions": 5}')->>'model';
SELECT rnnlm_train('v', 'SELECT body FROM corpus', '{$tiny, "tokenizer": "char", "seed": 3, "replace": true, "keep_versions": 5}')->>'model';
SELECT rnnlm_drop_version('v', 2);
SELECT rnnlm_grant('v', 'bob');
SELECT string_agg(version::text, ',' ORDER BY version) FROM rnnlm.model_versions WHERE name = 'v'}),
	"v\nv\nv\nt\n\n1,3", 'v02: at 0.2 alice stores versions 1 to 3 of v and drops version 2');
my $v02_scores = sql('v02', 'bob', q{
SELECT rnnlm_perplexity('v@1', 'the printer'), rnnlm_perplexity('v@3', 'the printer'),
       rnnlm_perplexity('v', 'the printer')});
sql('v02', 'super', 'ALTER EXTENSION rnnlm UPDATE');
is(sql('v02', 'super', q{SELECT extversion FROM pg_extension WHERE extname = 'rnnlm'}),
	'0.3', 'v02: ALTER EXTENSION rnnlm UPDATE brings it to 0.3');
is(sql('v02', 'super', $public_privs), $new_grants, 'v02: with the grants of 0.3');
is(sql('v02', 'super', q{SELECT name || ' ' || last_version FROM rnnlm.version_counter}), 'v 3',
	'v02: the version counter starts from the highest version stored');
is(sql('v02', 'bob', q{
SELECT rnnlm_perplexity('v@1', 'the printer'), rnnlm_perplexity('v@3', 'the printer'),
       rnnlm_perplexity('v', 'the printer')}), $v02_scores,
	'v02: bob, a grantee, gets the same scores from v, v@1 and v@3');
is(sql('v02', 'alice', qq{
SELECT rnnlm_train('v', 'SELECT body FROM corpus', '{$tiny, "tokenizer": "char", "seed": 4, "replace": true, "keep_versions": 5}')->>'model';
SELECT rnnlm_drop_version('v', 4);
SELECT rnnlm_train('v', 'SELECT body FROM corpus', '{$tiny, "tokenizer": "char", "seed": 5, "replace": true, "keep_versions": 5}')->>'model';
SELECT string_agg(version::text, ',' ORDER BY version) FROM rnnlm.model_versions WHERE name = 'v'}),
	"v\nf\nv\n1,3,4,5", 'v02: new versions are 4 and 5, never a number used before');
is(sql('v02', 'alice', q{
SELECT rnnlm_drop('v');
SELECT rnnlm_train('v', 'SELECT body FROM corpus', '{"tokenizer": "char", "hidden_size": 8, "embedding_dim": 4, "num_layers": 1, "epochs": 1}')->>'model';
SELECT version FROM rnnlm.models WHERE name = 'v'}),
	"t\nv\n6", 'v02: a model dropped and trained again goes on at version 6');

# ---------------------------------------------------------------- the fixture on 0.3

$node->safe_psql('fresh', 'CREATE EXTENSION rnnlm');
is(sql('fresh', 'super', q{SELECT extversion FROM pg_extension WHERE extname = 'rnnlm'}),
	'0.3', 'fresh: CREATE EXTENSION rnnlm installs 0.3');
is(sql('fresh', 'super', $public_privs), $new_grants, 'fresh: with the grants of 0.3');
is(sql('fresh', 'alice', qq{
SELECT rnnlm_import('fixture_v1', decode('$fixhex', 'hex'))->>'model';
SELECT cell, tokenizer, vocab_size, embedding_dim, hidden_size, num_layers, parameters, size_bytes
  FROM rnnlm.models WHERE name = 'fixture_v1'}),
	"fixture_v1\n" . join('|', @{$fixture}{qw(cell tokenizer vocab_size embedding_dim
		hidden_size num_layers parameters size_bytes)}),
	'fresh: the fixture file of format version 1 imports on 0.3, with its shapes');
for my $p (@{ $fixture->{perplexity} })
{
	(my $text = $p->{text}) =~ s/'/''/g;
	my $got = sql('fresh', 'alice', qq{SELECT rnnlm_perplexity('fixture_v1', '$text')});
	my $rel = abs($got - $p->{perplexity}) / $p->{perplexity};
	# float32 arithmetic through OpenBLAS: another processor's kernels may
	# round differently in the last bits, so not bit-exact
	ok($rel < 1e-5, "fresh: fixture perplexity of '$p->{text}' is $got, recorded $p->{perplexity}"
		  . sprintf(' (relative difference %.3g)', $rel));
}
is(sql('fresh', 'alice', q{SELECT md5(rnnlm_export('fixture_v1'))}), $fixture->{md5},
	'fresh: rnnlm_export of the imported fixture gives back the same bytes');
is(sql('old', 'alice', q{SELECT md5(rnnlm_export('fixture_v1'))}), $fixture->{md5},
	'old: so does the fixture imported on 0.1, after the update');

# ---------------------------------------------------------------- the schema

$node->safe_psql('stepped', q{
CREATE EXTENSION rnnlm VERSION '0.1';
ALTER EXTENSION rnnlm UPDATE;});
is(sql('stepped', 'super', q{SELECT extversion FROM pg_extension WHERE extname = 'rnnlm'}),
	'0.3', 'stepped: 0.1 updated to 0.3');

my $members = q{
  SELECT classid, objid, objsubid FROM pg_depend
   WHERE refclassid = 'pg_extension'::regclass
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'rnnlm')
     AND deptype = 'e'};
my $rels = "(SELECT objid FROM ($members) m WHERE classid = 'pg_class'::regclass)";
my @catalog = (
	extension => q{
SELECT e.extname, e.extversion, e.extrelocatable, e.extnamespace::regnamespace, e.extowner::regrole,
       (SELECT string_agg(r.extname, ',' ORDER BY r.extname)
          FROM pg_depend d JOIN pg_extension r ON r.oid = d.refobjid
         WHERE d.classid = 'pg_extension'::regclass AND d.objid = e.oid
           AND d.refclassid = 'pg_extension'::regclass)
  FROM pg_extension e WHERE e.extname = 'rnnlm'},
	members => qq{
SELECT pg_describe_object(classid, objid, objsubid) COLLATE "C" FROM ($members) m ORDER BY 1},
	'schema objects' => q{
SELECT * FROM (
  SELECT 'relation ' || relname || ' ' || relkind::text FROM pg_class
   WHERE relnamespace = 'rnnlm'::regnamespace
  UNION ALL
  SELECT 'function ' || oid::regprocedure::text FROM pg_proc
   WHERE pronamespace = 'rnnlm'::regnamespace) o(x)
 ORDER BY x COLLATE "C"},
	functions => qq{
SELECT p.oid::regprocedure::text COLLATE "C", p.pronamespace::regnamespace, p.proowner::regrole,
       p.proacl, pg_get_functiondef(p.oid)
  FROM ($members) m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
 ORDER BY 1},
	relations => qq{
SELECT c.oid::regclass::text COLLATE "C", c.relkind, c.relowner::regrole, c.relacl, c.reloptions,
       c.relrowsecurity, c.relforcerowsecurity, c.relpersistence, c.relreplident, c.relhasindex,
       c.relhastriggers, c.relchecks
  FROM pg_class c WHERE c.oid IN $rels ORDER BY 1},
	views => qq{
SELECT c.oid::regclass::text COLLATE "C", c.reloptions, pg_get_viewdef(c.oid, true)
  FROM pg_class c WHERE c.oid IN $rels AND c.relkind = 'v' ORDER BY 1},
	columns => qq{
SELECT c.oid::regclass::text COLLATE "C", a.attname, format_type(a.atttypid, a.atttypmod),
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attstorage, a.attcompression,
       a.attidentity, a.attgenerated, a.attcollation::regcollation, a.attacl
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.oid IN $rels AND c.relkind IN ('r', 'v', 'p')
 ORDER BY 1, a.attnum},
	constraints => qq{
SELECT conrelid::regclass::text COLLATE "C", conname COLLATE "C", contype,
       pg_get_constraintdef(oid)
  FROM pg_constraint WHERE conrelid IN $rels ORDER BY 1, 2},
	indexes => qq{
SELECT indexrelid::regclass::text COLLATE "C", pg_get_indexdef(indexrelid)
  FROM pg_index WHERE indrelid IN $rels ORDER BY 1},
	triggers => qq{
SELECT tgrelid::regclass::text COLLATE "C", tgname COLLATE "C", tgenabled, pg_get_triggerdef(oid)
  FROM pg_trigger WHERE tgrelid IN $rels AND NOT tgisinternal ORDER BY 1, 2},
	policies => q{
SELECT schemaname, tablename COLLATE "C", policyname COLLATE "C", permissive, roles, cmd,
       qual, with_check
  FROM pg_policies WHERE schemaname = 'rnnlm' ORDER BY 2, 3},
	'schema privileges' => q{
SELECT nspname, nspowner::regrole, nspacl FROM pg_namespace WHERE nspname = 'rnnlm'},
	'initial privileges' => qq{
SELECT pg_describe_object(i.classoid, i.objoid, i.objsubid) COLLATE "C", i.privtype, i.initprivs
  FROM pg_init_privs i
 WHERE (i.classoid, i.objoid) IN (SELECT classid, objid FROM ($members) m)
 ORDER BY 1},
	'configuration tables' => q{
SELECT u.c::regclass::text COLLATE "C", u.cond
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, cond)
 WHERE e.extname = 'rnnlm' ORDER BY 1},
	sequences => qq{
SELECT s.seqrelid::regclass::text COLLATE "C", format_type(s.seqtypid, NULL), s.seqstart,
       s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle,
       (SELECT d.refobjid::regclass || '.' || a.attname || ' ' || d.deptype::text
          FROM pg_depend d
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
           AND d.refclassid = 'pg_class'::regclass)
  FROM pg_sequence s WHERE s.seqrelid IN $rels ORDER BY 1},
	comments => qq{
SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid) COLLATE "C", d.description
  FROM pg_description d
 WHERE (d.classoid, d.objoid) IN (SELECT classid, objid FROM ($members) m)
 ORDER BY 1});

# The catalog description of the extension in a database: [section, text] pairs.
sub catalog
{
	my ($db) = @_;
	my @out;
	for (my $i = 0; $i < @catalog; $i += 2)
	{
		push @out, [ $catalog[$i], sql($db, 'super', $catalog[ $i + 1 ]) ];
	}
	return \@out;
}

# is() for two texts, with a unified diff when they differ.
sub is_text
{
	my ($got, $want, $name) = @_;
	return 1 if is($got, $want, $name);
	my ($fg, $g) = tempfile(UNLINK => 1);
	my ($fw, $w) = tempfile(UNLINK => 1);
	print $fg "$got\n";
	print $fw "$want\n";
	close $fg;
	close $fw;
	my ($diff) = run_command([ 'diff', '-u', $w, $g ]);
	diag("diff -u (fresh install) ($name):\n$diff");
	return 0;
}

my $fresh = catalog('fresh');
my %f = map { $_->[0] => $_->[1] } @$fresh;
# the description is not vacuous: it has the objects of 0.1 and of 0.2
like($f{members}, qr/^table rnnlm\.job$/m, 'fresh: the members include table rnnlm.job');
like($f{members}, qr/^view rnnlm\.jobs$/m, 'fresh: and view rnnlm.jobs');
like($f{members}, qr/^function rnnlm_tune\(text,text,jsonb,jsonb\)$/m, 'fresh: and rnnlm_tune');
like($f{members}, qr/^function rnnlm_perplexity\(text,text\[\]\)$/m, 'fresh: and rnnlm_perplexity(text, text[])');
my $nfunctions = () = $f{members} =~ /^function /mg;
cmp_ok($nfunctions, '>=', 24, "fresh: the extension has $nfunctions functions");
is(scalar(() = $f{functions} =~ /CREATE OR REPLACE FUNCTION /g), $nfunctions,
	'fresh: each has a definition');
like($f{columns}, qr/^rnnlm\.model\|history\|jsonb\|t\|'\[\]'::jsonb\|x\|/m,
	'fresh: the columns include rnnlm.model.history');
like($f{columns}, qr/^rnnlm\.model\|weights\|bytea\|t\|\|e\|/m, 'fresh: rnnlm.model.weights is STORAGE EXTERNAL');
like($f{columns}, qr/^rnnlm\.model\|revision\|bigint\|t\|/m,
	'fresh: the stamp of a model row\'s changes is rnnlm.model.revision');
like($f{columns}, qr/^rnnlm\.model\|version\|integer\|t\|1\|/m,
	'fresh: and rnnlm.model.version is the number of the version it holds');
like($f{columns}, qr/^rnnlm\.job\|checkpoint\|bytea\|f\|\|e\|/m, 'fresh: rnnlm.job.checkpoint is STORAGE EXTERNAL');
is(scalar(() = $f{policies} =~ /^rnnlm\|/mg), 11, 'fresh: eleven policies');
is($f{'configuration tables'},
	"rnnlm.job|\nrnnlm.job_id_seq|\nrnnlm.model|\nrnnlm.model_revision_seq|\nrnnlm.model_version|"
	  . "\nrnnlm.training_query|\nrnnlm.version_counter|",
	'fresh: seven configuration tables');
like($f{columns}, qr/^rnnlm\.model\|provenance\|jsonb\|f\|/m, 'fresh: rnnlm.model has provenance');
like($f{columns}, qr/^rnnlm\.job\|wait_reason\|text\|f\|/m, 'fresh: rnnlm.job has wait_reason');
like($f{views}, qr/^rnnlm\.jobs\|\{security_barrier=true,security_invoker=true\}\|/m,
	'fresh: rnnlm.jobs is security_barrier and security_invoker');
like($f{views}, qr/^rnnlm\.models\|\{security_barrier=true,security_invoker=true\}\|/m,
	'fresh: rnnlm.models is security_barrier and security_invoker');

for my $db (qw(stepped old v02))
{
	my $other = catalog($db);
	for my $i (0 .. $#$fresh)
	{
		is_text($other->[$i][1], $fresh->[$i][1],
			"$db: the $fresh->[$i][0] of the extension are those of a fresh 0.3 install");
	}
}

# the upgraded database dumps and restores with its old and new models
my $tmp = PostgreSQL::Test::Utils::tempdir();
$node->command_ok([ 'pg_dump', '-Fc', '-f', "$tmp/old.dump", '-d', $node->connstr('old') ],
	'pg_dump -Fc of the upgraded database');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
my ($rout, $rerr) = run_command(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), "$tmp/old.dump" ]);
is($rerr, '', 'pg_restore of it reports no error');
my $model_rows = q{
SELECT name, owner, cell, grantees, parent, history = '[]', md5(history::text), md5(weights)
  FROM rnnlm.model ORDER BY name COLLATE "C"};
is(sql('restored', 'super', $model_rows), sql('old', 'super', $model_rows),
	'restored: the same models, parents, histories and weights');
is(sql('restored', 'super', q{SELECT extversion FROM pg_extension WHERE extname = 'rnnlm'}), '0.3',
	'restored: the extension is at 0.3');
is(sql('restored', 'super', q{SELECT string_agg(name || ' ' || last_version, ',' ORDER BY name) FROM rnnlm.version_counter}),
	sql('old', 'super', q{SELECT string_agg(name || ' ' || last_version, ',' ORDER BY name) FROM rnnlm.version_counter}),
	'restored: with the version counters');

# an upgraded extension drops cleanly
sql('stepped', 'super', 'DROP EXTENSION rnnlm');
is(sql('stepped', 'super', q{
SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'rnnlm')
     + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'rnnlm%')}), '0',
	'stepped: DROP EXTENSION leaves neither the schema nor a function behind');

ok(!$node->log_contains('terminated by signal'), 'no backend crashed');
$node->stop;
done_testing();
