# rnnlm embeddings in a pgvector table with an HNSW index: rnnlm_embed's
# real[] casts to vector (and back, unchanged), the batch form casts to the
# same vectors, and a nearest-neighbour query ordered by cosine distance to
# the embedding of a query text runs as an Index Scan on the HNSW index and
# finds the near-paraphrase among unrelated texts, before and after more rows
# are inserted into the index.  rnnlm does not depend on pgvector; Debian 12
# does not package it, so this skips when the vector extension is not
# available in the PostgreSQL the tests run with.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $node = RnnlmTest::new_node('pgvector');
if ($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'}) ne '1')
{
	$node->stop;
	plan skip_all => 'the vector extension (pgvector) is not available in this PostgreSQL: '
	  . 'Debian 12 does not package it (PGDG has postgresql-15-pgvector, or build it from source)';
}

$node->safe_psql('postgres', 'CREATE EXTENSION vector');
my $vector_version = $node->safe_psql('postgres',
	q{SELECT extversion FROM pg_extension WHERE extname = 'vector'});
like($vector_version, qr/^\d+\.\d+/, "the vector extension is created (version $vector_version)");

# A small char model of helpdesk tickets about printers (as in the
# regression test rnnlm_uses), with a fixed seed.
$node->safe_psql('postgres', q{
CREATE TABLE pv_train AS
SELECT 'ticket ' || i || ': the printer on floor ' || (i % 7) || ' is out of toner' AS body
  FROM generate_series(1, 150) AS i;
SELECT rnnlm_train('pv_char', 'SELECT body FROM pv_train',
                   '{"tokenizer": "char", "cell": "gru", "epochs": 3, "hidden_size": 32,
                     "embedding_dim": 8, "num_layers": 1, "batch_size": 8, "seq_len": 24,
                     "learning_rate": 0.01, "seed": 42}');
});

my $dims = $node->safe_psql('postgres', q{SELECT array_length(rnnlm_embed('pv_char', 'ticket'), 1)});
is($dims, $node->safe_psql('postgres', q{SELECT hidden_size FROM rnnlm.models WHERE name = 'pv_char'}),
	"an embedding has the model's hidden_size ($dims) elements");

# Unrelated texts, some with words or the shape of the query, and in the
# middle one that says what the query says about another floor.
my $paraphrase = 'the printer on floor 5 is out of toner';
my $query = 'the printer on floor 2 is out of toner';
my @texts = (
	'the coffee machine in the kitchen is broken',
	'please reset my password for the payroll system',
	'the wifi in meeting room b keeps dropping',
	'my laptop battery drains in an hour',
	'the elevator is stuck between two floors',
	'order twelve boxes of blue pens',
	'the parking garage gate will not open',
	'the projector in the auditorium has no signal',
	'the quarterly report is due on friday',
	'who left the fridge door open again',
	'the heating on the third floor is too warm',
	'install the new vpn client on my desktop',
	'the shared drive is almost full',
	'lunch is served at noon in the cafeteria',
	'my monitor flickers when it warms up',
	'the badge reader at the back door is dead',
	'the sink in the restroom is leaking',
	'book a taxi to the airport for monday',
	'the scanner sends blank pages by email',
	'the phone on my desk has no dial tone',
	$paraphrase,
	'the calendar invite shows the wrong time zone',
	'the window blinds in office 12 are stuck',
	'a new hire starts next week and needs an account',
	'the backup job failed last night',
	'the vending machine ate my coins',
	'the stapler on desk 3 is out of staples',
	'the keyboard is missing the letter q',
	'the lights in the hallway flicker at night',
	'please renew the software license for the design team',
	'the fire alarm test is scheduled for thursday',
	'my mouse stopped working after the update',
	'the server room is too hot',
	'the mail room lost a package for me',
	'the conference call audio is choppy',
	'the printer paper tray is jammed',
	'send the invoice to accounting by monday',
	'the door to the roof must stay locked',
	'the database is slow in the afternoon',
	'the plants in the lobby need water',
	'the chairs in room 4 are broken');
my ($paraphrase_id) = grep { $texts[ $_ - 1 ] eq $paraphrase } 1 .. @texts;
my $values = join ",\n", map { "($_, '$texts[$_ - 1]')" } 1 .. @texts;

$node->safe_psql('postgres', qq{
CREATE TABLE pv_docs (id int PRIMARY KEY, body text NOT NULL, embedding vector($dims));
INSERT INTO pv_docs (id, body, embedding)
SELECT id, body, rnnlm_embed('pv_char', body)::vector
  FROM (VALUES $values) AS v(id, body);
CREATE INDEX pv_docs_embedding_idx ON pv_docs USING hnsw (embedding vector_cosine_ops);
ANALYZE pv_docs;
});

is( $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE vector_dims(embedding) = $dims
                          AND embedding::real[] = rnnlm_embed('pv_char', body)),
       count(*)
  FROM pv_docs}),
	scalar(@texts) . '|' . scalar(@texts),
	'every row holds its text\'s embedding: the vector casts back to the same real[]');

is( $node->safe_psql('postgres', q{
WITH a AS (SELECT array_agg(body ORDER BY id) AS bodies, array_agg(id ORDER BY id) AS ids FROM pv_docs)
SELECT count(*)
  FROM a, rnnlm_embed('pv_char', a.bodies) AS e, pv_docs d
 WHERE d.id = a.ids[e.ordinality] AND d.embedding = e.embedding::vector}),
	scalar(@texts),
	'the batch form casts to the same vectors as the single form');

my $nearest = qq{SELECT id FROM pv_docs
 ORDER BY embedding <=> rnnlm_embed('pv_char', '$query')::vector LIMIT 1};

my $plan = $node->safe_psql('postgres', "SET enable_seqscan = off; EXPLAIN (COSTS OFF) $nearest");
note($plan);
like($plan, qr/Index Scan using pv_docs_embedding_idx on pv_docs/,
	'the nearest-neighbour query is an Index Scan on the HNSW index');
like($plan, qr/Order By: \(embedding <=> \(?rnnlm_embed\('pv_char'/,
	'ordered by the index on the cosine distance to the query\'s embedding');
unlike($plan, qr/Sort|Seq Scan/, 'with no sort and no sequential scan');

is($node->safe_psql('postgres', "SET enable_seqscan = off; $nearest"),
	$paraphrase_id,
	"through the index, the nearest text to '$query' is '$paraphrase'");
my $exact = 'SET enable_indexscan = off; SET enable_bitmapscan = off;';
like($node->safe_psql('postgres', "$exact EXPLAIN (COSTS OFF) $nearest"), qr/Sort.*Seq Scan on pv_docs/s,
	'without index scans the query sorts all rows (an exact search)');
is($node->safe_psql('postgres', "$exact $nearest"),
	$paraphrase_id, 'which finds the same text');

# the index takes new rows: the query text itself is now the nearest, at distance 0
$node->safe_psql('postgres', qq{
INSERT INTO pv_docs SELECT 1000, '$query', rnnlm_embed('pv_char', '$query')::vector});
is( $node->safe_psql('postgres', qq{SET enable_seqscan = off;
SELECT id, embedding <=> rnnlm_embed('pv_char', '$query')::vector < 1e-6
  FROM pv_docs ORDER BY embedding <=> rnnlm_embed('pv_char', '$query')::vector LIMIT 2}),
	"1000|t\n$paraphrase_id|f",
	'a row inserted after the index was built is found through it (at distance 0), then the paraphrase');

$node->stop;
done_testing();
