# Scoring where the rows are: a coordinator and two shards, a table
# partitioned by hash whose partitions are postgres_fdw foreign tables on
# the shards (one server each, async_capable, extensions 'rnnlm').  The
# model is copied to the shards with rnnlm_publish (through each server's
# user mapping, with its grants; again is a no-op), so its version has the
# same SHA-256 everywhere, and is named by that hash.
# rnnlm_perplexity_at (IMMUTABLE) is then sent to the shards in WHERE, in
# ORDER BY ... LIMIT, and, with enable_partitionwise_aggregate, inside
# aggregates grouped by the partition key: EXPLAIN VERBOSE shows it in the
# Remote SQL.  (PostgreSQL 15's postgres_fdw does not push partial
# aggregates, so a plain avg() over the table fetches the text; the test
# shows that too.)  The servers use remote estimates and an fdw_tuple_cost
# of 1 (fetching a row from another machine is not free), which is what
# lets the planner see that sending the function is cheaper than fetching
# the text.  Every result equals scoring a local copy of the rows.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $coord = RnnlmTest::new_node('coord', conf => "max_worker_processes = 8\n");
my @shards = map { RnnlmTest::new_node("shard$_") } 1, 2;

my $has_fdw = $coord->safe_psql('postgres',
	q{SELECT count(*) FROM pg_available_extensions WHERE name = 'postgres_fdw'});
plan skip_all => 'postgres_fdw is not installed in this PostgreSQL' unless $has_fdw;

# the rows, 200 tickets, on the coordinator (local copy) and through the partitions
my $rows = q{SELECT i AS id, 'ticket ' || i || ': the printer on floor ' || (i % 7)
                      || CASE WHEN i % 17 = 0 THEN ' zq xv kj' ELSE ' is out of toner' END AS body
               FROM generate_series(1, 200) AS i};
for my $k (0, 1)
{
	$shards[$k]->safe_psql('postgres', "CREATE TABLE t_$k (id int, body text)");
}
my $user = $coord->safe_psql('postgres', 'SELECT current_user');
my $setup = "CREATE EXTENSION postgres_fdw;\n"
  . "CREATE TABLE local_t AS $rows;\n"
  . "CREATE TABLE t (id int, body text) PARTITION BY HASH (id);\n";
for my $k (0, 1)
{
	my ($host, $port) = ($shards[$k]->host, $shards[$k]->port);
	$setup .=
	    "CREATE SERVER shard$k FOREIGN DATA WRAPPER postgres_fdw "
	  . "OPTIONS (host '$host', port '$port', dbname 'postgres', extensions 'rnnlm', async_capable 'true', use_remote_estimate 'true', fdw_tuple_cost '1');\n"
	  . "CREATE USER MAPPING FOR CURRENT_USER SERVER shard$k OPTIONS (user '$user');\n"
	  . "CREATE FOREIGN TABLE t_$k PARTITION OF t FOR VALUES WITH (MODULUS 2, REMAINDER $k) "
	  . "SERVER shard$k OPTIONS (table_name 't_$k');\n";
}
$setup .= "INSERT INTO t SELECT id, body FROM local_t;\nANALYZE t, t_0, t_1, local_t;\n";
$coord->safe_psql('postgres', $setup);
is( $shards[0]->safe_psql('postgres', 'SELECT count(*) FROM t_0') +
	  $shards[1]->safe_psql('postgres', 'SELECT count(*) FROM t_1'),
	200, 'the 200 rows are on the shards, none of them on both');
cmp_ok($shards[0]->safe_psql('postgres', 'SELECT count(*) FROM t_0'), '>', 50,
	'and both shards hold a good part of them');

# the model: trained on the coordinator, granted, and published to each
# shard through its server's user mapping (the same file, the same SHA-256)
for my $n ($coord, @shards)
{
	$n->safe_psql('postgres', 'CREATE ROLE analyst');
}
$coord->safe_psql('postgres', q{
SELECT rnnlm_train('tickets', 'SELECT body FROM local_t',
                   '{"tokenizer": "char", "cell": "gru", "epochs": 2, "hidden_size": 16,
                     "embedding_dim": 8, "num_layers": 1, "seed": 3}');
SELECT rnnlm_grant('tickets', 'analyst');
SELECT rnnlm_grant('tickets', 'PUBLIC')});
my $sha = $coord->safe_psql('postgres', q{SELECT sha256 FROM rnnlm.models WHERE name = 'tickets'});
is($coord->safe_psql('postgres', q{SELECT rnnlm_publish('tickets@1', 'shard0'), rnnlm_publish('tickets', 'shard1')}),
	't|t', 'rnnlm_publish copies the version to both shards');
is($coord->safe_psql('postgres', q{SELECT rnnlm_publish('tickets@1', 'shard0'), rnnlm_publish('tickets@1', 'shard1')}),
	'f|f', 'and publishing it again sends nothing (the hash is checked)');
for my $s (@shards)
{
	is($s->safe_psql('postgres',
			q{SELECT sha256, (SELECT string_agg(g, ',' ORDER BY g COLLATE "C") FROM unnest(granted_to) g)
			  FROM rnnlm.models WHERE name = 'tickets'}),
		"$sha|PUBLIC,analyst", $s->name . ': the published version has the same SHA-256 and the grants');
}
my ($ret, $out, $err) = $coord->psql('postgres', q{SELECT rnnlm_publish('tickets@9', 'shard0')});
like($err, qr/rnnlm model "tickets" has no version 9/, 'publishing a missing version is an error naming it');
($ret, $out, $err) = $coord->psql('postgres', q{SELECT rnnlm_publish('tickets', 'no_such_server')});
like($err, qr/server "no_such_server" does not exist/, 'and so is an unknown server');
my $ref = 'tickets@sha256:' . substr($sha, 0, 16);

# Runs a query on the coordinator; with EXPLAIN VERBOSE, its plan.
sub coord { return $coord->safe_psql('postgres', "SET enable_partitionwise_aggregate = on;\n" . $_[0]); }
sub plan_of { return coord("EXPLAIN (VERBOSE, COSTS OFF) $_[0]"); }

# WHERE
my $where = "SELECT count(*) FROM t WHERE rnnlm_perplexity_at('$ref', body) > 8";
like(plan_of($where), qr/Remote SQL: .*rnnlm_perplexity_at\(/,
	'WHERE: rnnlm_perplexity_at is in the Remote SQL');
is(coord($where),
	coord("SELECT count(*) FROM local_t WHERE rnnlm_perplexity('tickets', body) > 8"),
	'WHERE: the same count as scoring the local copy');

# the shards run at once (async_capable) when their scans sit right under
# the Append; partitionwise aggregation of a plain count puts a partial
# aggregate above each, and then they run one after the other
like($coord->safe_psql('postgres', "EXPLAIN (VERBOSE, COSTS OFF) $where"),
	qr/Async Foreign Scan.*Async Foreign Scan/s,
	'WHERE: without partitionwise aggregation both shards scan asynchronously');
unlike(plan_of($where), qr/Async Foreign Scan/,
	'and with it, neither does (the README says to set it for grouped queries only)');

# ORDER BY ... LIMIT
my $top = "SELECT id FROM t ORDER BY rnnlm_perplexity_at('$ref', body) DESC, id LIMIT 10";
like(plan_of($top), qr/Remote SQL: .*ORDER BY .*rnnlm_perplexity_at\(/,
	'ORDER BY: the shards sort by rnnlm_perplexity_at');
is(coord($top),
	coord("SELECT id FROM local_t ORDER BY rnnlm_perplexity('tickets', body) DESC, id LIMIT 10"),
	'ORDER BY: the same ten rows, in the same order, as the local copy');

# an aggregate: PostgreSQL 15's postgres_fdw sends whole aggregates only,
# not partial ones, so a plain avg() over t fetches the text; grouped by
# the partition key (enable_partitionwise_aggregate), each shard computes
# its groups' sums and counts, and only those numbers travel
my $plain = "SELECT round(avg(rnnlm_perplexity_at('$ref', body))::numeric, 9) FROM t";
like(plan_of($plain), qr/Remote SQL: SELECT body FROM/,
	'aggregate: a plain avg() over the partitions fetches the text (no partial aggregate pushdown in 15)');
my $avg = "SELECT round((sum(s) / sum(n))::numeric, 9) FROM ("
  . "SELECT id, sum(rnnlm_perplexity_at('$ref', body)) AS s, count(*) AS n FROM t GROUP BY id) AS per_key";
my $avg_plan = plan_of($avg);
like($avg_plan, qr/Remote SQL: SELECT id, sum\(public\.rnnlm_perplexity_at\(/,
	'aggregate grouped by the partition key: the shards compute the sums, rnnlm_perplexity_at inside')
  or diag($avg_plan);
unlike($avg_plan, qr/Remote SQL: SELECT [^\n]*body FROM/, 'and no text is fetched');
is(coord($avg), coord("SELECT round(avg(rnnlm_perplexity('tickets', body))::numeric, 9) FROM local_t"),
	'aggregate: the same mean perplexity as the local copy');
is(coord($plain), coord($avg), 'and as the plain avg()');

# a grouped report: one row per floor, computed on the shards
my $grouped = "SELECT (id % 7) AS floor, count(*) FILTER (WHERE rnnlm_perplexity_at('$ref', body) > 8) "
  . "FROM t GROUP BY 1 ORDER BY 1";
is(coord($grouped),
	coord("SELECT (id % 7), count(*) FILTER (WHERE rnnlm_perplexity('tickets', body) > 8) "
		  . "FROM local_t GROUP BY 1 ORDER BY 1"),
	'grouped: the same counts per group as the local copy');

# the plain STABLE function is evaluated on the coordinator (after fetching the text)
unlike(plan_of("SELECT count(*) FROM t WHERE rnnlm_perplexity('tickets', body) > 8"),
	qr/Remote SQL: .*rnnlm_perplexity/, 'rnnlm_perplexity (STABLE) is not sent to the shards');

$_->stop for $coord, @shards;
done_testing();
