# pg_dump and pg_restore keep the models: rnnlm.model and its revision
# sequence are extension configuration tables (pg_extension_config_dump), so
# their contents are dumped with the database.  Models trained by different
# roles, granted to a role and to PUBLIC, and one imported with
# rnnlm_export/rnnlm_import, come back in a custom-format restore and a
# plain-format restore with the same rows, owners, grants, byte-identical
# weights, the same perplexities and greedy text, and the same visibility
# for every role.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $node = RnnlmTest::new_node('backup');
my $tmp = PostgreSQL::Test::Utils::tempdir();

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
CREATE EXTENSION rnnlm;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE carol LOGIN;
CREATE TABLE corpus AS
  SELECT 'ticket ' || i || ' says the printer on floor ' || (i % 5)
         || ' is out of paper' AS body
    FROM generate_series(1, 150) i;
GRANT SELECT ON corpus TO alice, bob;
});

my $tiny = '"embedding_dim": 8, "hidden_size": 16, "num_layers": 1, "epochs": 2';

# Runs SQL as a role (SET ROLE) in a database, quietly.
sub as_role
{
	my ($db, $role, $sql) = @_;
	my $set = $role eq 'super' ? '' : "SET ROLE $role;\n";
	return $node->safe_psql($db, "SET client_min_messages = warning;\n$set$sql");
}

# Trains a tiny model as a role.
sub train
{
	my ($role, $name, $extra) = @_;
	$extra = defined $extra ? ", $extra" : '';
	return as_role('src', $role, qq{
SELECT rnnlm_train('$name', 'SELECT body FROM corpus', '{$tiny$extra}')->>'model'});
}

is(train('alice', 'al_bob'), 'al_bob', 'alice trains al_bob');
is(train('alice', 'al_pub', '"cell": "gru", "tokenizer": "char"'), 'al_pub',
	'alice trains al_pub (char GRU)');
is(train('alice', 'al_priv', '"cell": "rnn", "seed": 9'), 'al_priv', 'alice trains al_priv');
is(train('bob', 'bob_own', '"seed": 3'), 'bob_own', 'bob trains bob_own');
is(train('super', "spaces and ''quote''", '"epochs": 1'), "spaces and 'quote'",
	'the superuser trains a model with an awkward name');
as_role('src', 'alice', q{
SELECT rnnlm_grant('al_bob', 'bob');
SELECT rnnlm_grant('al_pub', 'PUBLIC');
SELECT rnnlm_grant('al_priv', 'bob');
SELECT rnnlm_revoke('al_priv', 'bob');});
as_role('src', 'super', q{SELECT rnnlm_grant('spaces and ''quote''', 'alice');
SELECT rnnlm_grant('spaces and ''quote''', 'bob');});
is(as_role('src', 'bob', q{
SELECT rnnlm_import('bob_imp', rnnlm_export('al_pub'))->>'model'}),
	'bob_imp', 'bob imports bob_imp from the export of al_pub');

my @roles = qw(super alice bob carol);
my %visible = (
	super => "al_bob,al_priv,al_pub,bob_imp,bob_own,spaces and 'quote'",
	alice => "al_bob,al_priv,al_pub,spaces and 'quote'",
	bob   => "al_bob,al_pub,bob_imp,bob_own,spaces and 'quote'",
	carol => 'al_pub');
my %hidden = (
	alice => [ 'bob_own', 'bob_imp' ],
	bob   => ['al_priv'],
	carol => [ 'al_bob', 'al_priv', 'bob_own', 'bob_imp' ]);

# Everything the test compares between databases, by key.
sub snapshot
{
	my ($db) = @_;
	my %s;
	$s{extension} = $node->safe_psql($db,
		q{SELECT extname || ' ' || extversion || ' ' || n.nspname
		    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		   WHERE extname = 'rnnlm'});
	$s{models} = $node->safe_psql($db, q{
SELECT name, owner, granted_to, cell, tokenizer, vocab_size, embedding_dim, hidden_size,
       num_layers, parameters, size_bytes, train_loss, val_loss, val_perplexity,
       trained_tokens, created_at, options
  FROM rnnlm.models ORDER BY name});
	$s{rows} = $node->safe_psql($db, q{
SELECT name, owner::text, grantees::text, md5(weights), octet_length(weights)
  FROM rnnlm.model ORDER BY name});
	$s{sequence} = $node->safe_psql($db,
		'SELECT last_value, is_called FROM rnnlm.model_revision_seq');
	for my $role (@roles)
	{
		$s{"visible $role"} = as_role($db, $role,
			q{SELECT string_agg(name, ',' ORDER BY name) FROM rnnlm.models});
		$s{"perplexity $role"} = as_role($db, $role, q{
SELECT m.name, t.i, rnnlm_perplexity(m.name, t.x)
  FROM rnnlm.models m,
       (VALUES (1, 'ticket 7 says the printer is out of paper'),
               (2, 'the printer on floor 2'),
               (3, 'zebras quietly eat purple paper')) t(i, x)
 ORDER BY m.name, t.i});
		$s{"batch $role"} = as_role($db, $role, q{
SELECT name, rnnlm_perplexity(name, ARRAY['ticket 9 says', 'out of paper', NULL])
  FROM rnnlm.models ORDER BY name});
		$s{"generate $role"} = as_role($db, $role, q{
SELECT name, rnnlm_generate(name, 'the printer', 15, 0.0, 0, 1.0, 7)
  FROM rnnlm.models ORDER BY name});
		for my $h (@{ $hidden{$role} // [] })
		{
			my ($ret, $out, $err) = $node->psql($db,
				"SET ROLE $role; SELECT rnnlm_perplexity('$h', 'the printer')");
			$s{"hidden $role $h"} = ($ret != 0 && $err =~ /rnnlm model "$h" does not exist/)
			  ? 'does not exist' : "ret=$ret out=$out err=$err";
		}
	}
	return \%s;
}

my $before = snapshot('src');
is($before->{"visible $_"}, $visible{$_}, "src: $_ sees the expected models") for @roles;
like($before->{models}, qr/^al_bob\|alice\|\{bob\}\|lstm\|/m, 'src: al_bob is alice\'s, granted to bob');
like($before->{models}, qr/^al_pub\|alice\|\{PUBLIC\}\|gru\|char\|/m, 'src: al_pub is granted to PUBLIC');
like($before->{models}, qr/^al_priv\|alice\|\{\}\|rnn\|/m, 'src: al_priv is granted to nobody');
like($before->{models}, qr/^bob_imp\|bob\|\{\}\|gru\|char\|.*\{"imported": true\}$/m,
	'src: bob_imp is an imported copy, owned by bob');
like($before->{models}, qr/^spaces and 'quote'\|\S+\|\{alice,bob\}\|/m,
	'src: the awkward name is granted to alice and bob');
is($before->{"hidden $_->[0] $_->[1]"}, 'does not exist', "src: $_->[0] cannot use $_->[1]")
  for map { my $r = $_; map { [ $r, $_ ] } @{ $hidden{$r} } } sort keys %hidden;
my ($imp_md5, $pub_md5) = map {
	$node->safe_psql('src', "SELECT md5(weights) FROM rnnlm.model WHERE name = '$_'")
} qw(bob_imp al_pub);
is($imp_md5, $pub_md5, 'src: the imported weights equal the exported ones');

# Compares a restored database with src.
sub compare_with_src
{
	my ($db) = @_;
	my $after = snapshot($db);
	is($after->{extension}, $before->{extension}, "$db: the extension exists ($after->{extension})");
	is($after->{models}, $before->{models},
		"$db: rnnlm.models has every model with the same owner, grants and metadata");
	is($after->{rows}, $before->{rows},
		"$db: rnnlm.model rows have the same owners, grantees and weights (md5); revisions are renumbered on load");
	is($after->{sequence}, $before->{sequence}, "$db: the revision sequence is restored");
	for my $key (sort grep { !/^(extension|models|rows|sequence)$/ } keys %$before)
	{
		is($after->{$key}, $before->{$key}, "$db: same $key");
	}
	is($node->safe_psql($db, q{
SELECT attstorage FROM pg_attribute
 WHERE attrelid = 'rnnlm.model'::regclass AND attname = 'weights'}), 'e',
		"$db: the weights column keeps STORAGE EXTERNAL");

	# the restored models work like the originals
	as_role($db, 'alice', q{SELECT rnnlm_revoke('al_bob', 'bob')});
	is(as_role($db, 'alice', q{SELECT string_agg(name, ',' ORDER BY name) FROM rnnlm.models;
RESET ROLE; SET ROLE bob;
SELECT string_agg(name, ',' ORDER BY name) FROM rnnlm.models}),
		"al_bob,al_priv,al_pub,spaces and 'quote'\nal_pub,bob_imp,bob_own,spaces and 'quote'",
		"$db: alice can revoke a restored grant and bob loses the model");
	my ($ret, $out, $err) = $node->psql($db,
		"SET ROLE bob; SELECT rnnlm_drop('al_pub')");
	like($err, qr/must be owner of rnnlm model "al_pub"/, "$db: bob still cannot drop alice's model");
	is(as_role($db, 'alice', qq{
SELECT rnnlm_train('al_pub', 'SELECT body FROM corpus', '{$tiny, "replace": true, "seed": 77}')->>'model';
SELECT granted_to FROM rnnlm.models WHERE name = 'al_pub'}), "al_pub\n{PUBLIC}",
		"$db: alice replaces al_pub and its grant to PUBLIC stays");
	is(as_role($db, 'bob', qq{
SELECT rnnlm_train('bob_new', 'SELECT body FROM corpus', '{$tiny}')->>'model';
SELECT count(*) FROM rnnlm.model m
 WHERE name <> 'bob_new'
   AND revision >= (SELECT revision FROM rnnlm.model WHERE name = 'bob_new')}),
		"bob_new\n0", "$db: a new model gets a revision above every restored one");
}

# Custom format, restored with pg_restore.
my $dump = "$tmp/src.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('src') ],
	'pg_dump -Fc src');
my ($list) = run_command([ 'pg_restore', '-l', $dump ]);
like($list, qr/TABLE DATA rnnlm model /, 'the dump has the data of rnnlm.model');
like($list, qr/SEQUENCE SET rnnlm model_revision_seq /, 'and the state of its revision sequence');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
my ($rout, $rerr) = run_command(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump ]);
is($rerr, '', 'pg_restore -d dst reports no error');
compare_with_src('dst');

# Plain format, restored with psql.
my $plain = "$tmp/src.sql";
$node->command_ok([ 'pg_dump', '-Fp', '-f', $plain, '-d', $node->connstr('src') ],
	'pg_dump -Fp src');
$node->safe_psql('postgres', 'CREATE DATABASE plain');
my ($pout, $perr) = run_command(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('plain'), '-f', $plain ]);
is($perr, '', 'the plain dump loads into plain without an error');
compare_with_src('plain');

# src itself was not changed by the dumps
is_deeply(snapshot('src'), $before, 'src is unchanged');

$node->stop;
done_testing();
