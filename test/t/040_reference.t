# Compares rnnlm's tokens and per-token log-probabilities with an
# independent reader.
#
# For every cell and tokenizer (word, char, bpe) a small model is trained
# through SQL, its blob is read back from rnnlm.model, and test/reference.py
# (written from doc/format.md: the version 2 sections, the Unicode text
# rules, bpe, and the cells in float64 PyTorch) parses it, writes it again
# byte for byte, tokenizes the test texts into the token ids rnnlm reports,
# and scores those ids: every log-probability must agree within 1e-4, and
# rnnlm_perplexity must equal exp(-mean(logprob)) of the reference.  For
# bpe the reference also learns the merges from the training corpus and
# must find the model's vocabulary and merges.
use strict;
use warnings;

use File::Basename qw(dirname);

use Encode qw(decode);
use IPC::Run;
use JSON::PP;
use List::Util qw(sum);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use RnnlmTest;

my $python = RnnlmTest::python();
my $reference = RnnlmTest::repo() . '/test/reference.py';

# The reference needs PyTorch; without it there is nothing to compare with.
my ($probe_out, $probe_err);
my $has_torch = eval {
	IPC::Run::run([ $python, '-c', 'import torch' ],
		'>', \$probe_out, '2>', \$probe_err);
};
if (!$has_torch)
{
	plan skip_all => "$python cannot import torch (set RNNLM_PYTHON)";
}

my $tolerance = 1e-4;
my $max_reports = 10;    # differing positions shown per model

# The training corpus: short English sentences, a few accented words and a
# Chinese sentence (the source is UTF-8 and is passed through as bytes).
my @corpus = (
	'The cat sat on the mat.',
	'A dog ran across the yard.',
	'The sun rises in the east.',
	'She reads a book every night.',
	'We walked to the old market.',
	'He plays the piano very well.',
	'The river flows to the sea.',
	'Birds sing in the early morning.',
	'My brother likes green apples.',
	'The train leaves at noon.',
	'They built a small wooden boat.',
	'It rained all day on Sunday.',
	'The children laughed at the clown.',
	'Please close the door quietly.',
	'Our teacher told a funny story.',
	'The moon was bright last night.',
	'I drink coffee in the morning.',
	'The garden is full of roses.',
	'A cold wind blew from the north.',
	'The baker sells fresh bread.',
	'Tom found a coin under the bed.',
	'The shop opens at nine.',
	'We ate dinner by the fire.',
	'The old man fed the pigeons.',
	'Snow covered the quiet village.',
	'The kettle is on the stove.',
	'She painted the fence white.',
	'The bus was late again today.',
	'He wrote a letter to his aunt.',
	'The lamp lit up the small room.',
	'Fish swim in the clear lake.',
	'The farmer milks the cows.',
	'A red kite flew over the hill.',
	'The clock struck twelve.',
	'We planted trees in the spring.',
	'The library is very quiet.',
	'Her cat sleeps on the sofa.',
	'The boy kicked the ball hard.',
	'Leaves fall in the autumn.',
	'The ship sailed at dawn.',
	'I lost my keys in the park.',
	'The soup is too hot to eat.',
	'They sang songs around the fire.',
	'The road winds up the mountain.',
	'A mouse ran under the table.',
	'The stars shine at night.',
	'He fixed the broken chair.',
	'The queen waved to the crowd.',
	'We met at a café near the station.',
	'The naïve fox trusted the crow.',
	'Crème brûlée is a sweet dessert.',
	'我们 今天 去 公园 散步。',
	'猫坐在垫子上。');

# Documents to score.  Each list mixes seen text with tokens the model has
# never seen (they must map to <unk>), and one document has no tokens at all.
my %test_docs = (
	word => [
		'The cat sat on the mat.',
		'The queen found a coin near the café.',
		'Zebras juggle xylophones quickly, the dog said.',
		'我们 今天 去 公园',
		'',
	],
	char => [
		'The cat sat on the mat.',
		'We met at a café; the naïve fox ate crème brûlée.',
		'Zebra QUIZ: Ωmega ☃ jumps! 日本語 猫坐在垫子上。',
		'x',
		'',
	]);

# Texts for the bpe models: double spaces and punctuation, accents, Chinese,
# tabs and newlines, text the corpus never had, pieces longer than 256
# bytes, and compatibility characters for the NFKC model.
my @bpe_docs = (
	'The cat sat on the mat.',
	'We met at a café;  the naïve fox ate crème brûlée!!',
	"  Hello,   world -- 42 apples?\tand\n\nnew  lines  ",
	'我们 今天 去 公园 散步。猫坐在垫子上。  日本語、中文！',
	'Zebras juggle xylophones: Ωmega ☃ € 3.14 (x+y)=z ... "quoted"',
	('a' x 300) . ' ' . ('é' x 150) . '  ' . ('猫' x 100) . ' ' . ('!' x 260),
	'Straße ẞ ＡＢＣ ﬁne ÉCOLE Ⅻ ½ ﬀ',
	'',
);
$test_docs{bpe} = \@bpe_docs;

# Quotes a string as an SQL literal.
sub sql_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

# Runs a command and returns its stdout and stderr; dies if it fails.
sub run_or_die
{
	my @cmd = @_;
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(\@cmd, '>', \$stdout, '2>', \$stderr);
	die "command failed: @cmd\n$stderr" unless $ok;
	return ($stdout, $stderr);
}

# Writes bytes to a file.
sub write_file
{
	my ($path, $bytes) = @_;
	open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
	print $fh $bytes;
	close($fh) or die "cannot close $path: $!";
}

my $node = RnnlmTest::new_node('reference');

# A database of our own with a known encoding, so that the char tokenizer
# sees UTF-8 whatever the cluster's default encoding is.
$node->safe_psql('postgres',
	"CREATE DATABASE reftest TEMPLATE template0 ENCODING 'UTF8' "
	  . "LC_COLLATE 'C' LC_CTYPE 'C'");
my $db = 'reftest';
$node->safe_psql($db, 'CREATE EXTENSION IF NOT EXISTS rnnlm');
$node->safe_psql($db,
	"SET client_encoding = 'UTF8';\n"
	  . "CREATE TABLE corpus (id int PRIMARY KEY, body text NOT NULL);\n"
	  . "INSERT INTO corpus VALUES "
	  . join(",\n",
		map { '(' . ($_ + 1) . ', ' . sql_literal($corpus[$_]) . ')' }
		  0 .. $#corpus)
	  . ';');

my $tmp = PostgreSQL::Test::Utils::tempdir();

# The parser and cells of the reference check themselves.
{
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ $python, $reference, '--selftest' ],
		'>', \$stdout, '2>', \$stderr);
	ok($ok, 'reference.py --selftest');
	diag(join("\n", grep { !/^ok: / } split /\n/, $stderr)) unless $ok;
}

# Runs the reference on a model file and returns its decoded JSON output.
sub reference_json
{
	my @args = @_;
	my ($out) = run_or_die($python, $reference, @args);
	return decode_json($out);
}

# The corpus and texts as JSON for the reference (the Perl strings hold UTF-8 bytes).
sub texts_json
{
	my ($texts) = @_;
	return encode_json(
		[ map { decode('UTF-8', $_, Encode::FB_CROAK | Encode::LEAVE_SRC) } @$texts ]);
}

# A list of ids for a diagnostic message.
sub show_ids
{
	my ($ids) = @_;
	my @shown = @$ids > 40 ? (@$ids[ 0 .. 39 ], '...') : @$ids;
	return '[' . join(',', @shown) . ']';
}

# Trains one model and checks it against the reference: the blob, the token
# ids of every text, the log-probabilities and the perplexities.
sub check_model
{
	my ($name, $opts, $docs) = @_;
	my $tokenizer = $opts->{tokenizer};
	my $options = encode_json(
		{
			embedding_dim => 8,
			hidden_size => 16,
			num_layers => 2,
			epochs => 2,
			batch_size => 4,
			seq_len => 8,
			seed => 1,
			validation_fraction => 0,
			%$opts
		});
	my $summary = decode_json(
		$node->safe_psql(
			$db,
			"SELECT rnnlm_train('$name', 'SELECT body FROM corpus ORDER BY id', "
			  . sql_literal($options) . ')'));
	is_deeply([ $summary->{cell}, $summary->{tokenizer} ],
		[ $opts->{cell}, $tokenizer ], "$name: trained");

	# The blob, exactly as stored.
	my $hex = $node->safe_psql($db,
		"SELECT encode(weights, 'hex') FROM rnnlm.model WHERE name = '$name'");
	my $model_file = "$tmp/$name.bin";
	write_file($model_file, pack('H*', $hex));

	# The reference reads it as a version 2 file and writes the same bytes.
	my $info = reference_json('--info', $model_file);
	my $lower = $opts->{lowercase} // ($tokenizer eq 'word');
	my $normalize = { none => 0, nfc => 1, nfkc => 2 }->{ $opts->{normalize} // 'none' };
	my $text_ok =
	  $info->{text}{rules} == 1
	  && $info->{text}{normalize} == $normalize
	  && length($info->{text}{unicode_version}) > 0;
	my $tok_ok =
	  $tokenizer eq 'bpe'
	  ? ($info->{merges} > 0 && $info->{V} > 258 && $info->{V} <= $opts->{max_vocab})
	  : !defined $info->{merges};
	ok( $info->{version} == 2
		  && $info->{cell} eq $opts->{cell}
		  && $info->{tokenizer} eq $tokenizer
		  && ($info->{lowercase} ? 1 : 0) == ($lower ? 1 : 0)
		  && $text_ok
		  && $tok_ok
		  && $info->{reserialized},
		"$name: the reference reads the version 2 blob and writes it again byte for byte")
	  or diag(encode_json($info));

	# rnnlm's own scores: token ids and log-probabilities, in order.
	my (@ids, @sql_lp, @sql_ppl);
	my $eod_last = 1;
	my $unk_seen = 0;
	my $specials_inside = 0;
	foreach my $doc (@$docs)
	{
		my $rows = $node->safe_psql($db,
			"SET client_encoding = 'UTF8';\n"
			  . "SELECT token_id, logprob, token = '<eod>' "
			  . "FROM rnnlm_token_logprobs('$name', "
			  . sql_literal($doc)
			  . ') ORDER BY position');
		my (@doc_ids, @doc_lp, $last_is_eod);
		foreach my $row (split /\n/, $rows)
		{
			my ($id, $lp, $is_eod) = split /\|/, $row;
			push @doc_ids, $id + 0;
			push @doc_lp, $lp + 0;
			$last_is_eod = ($is_eod eq 't' && $id == 0);
		}
		$eod_last &&= (@doc_ids && $last_is_eod);
		pop @doc_ids;    # the reference adds the final <eod> itself
		$unk_seen ||= grep { $_ == 1 } @doc_ids;
		$specials_inside += grep { $_ < 2 } @doc_ids;
		push @ids, \@doc_ids;
		push @sql_lp, \@doc_lp;
		push @sql_ppl,
		  $node->safe_psql($db,
			"SET client_encoding = 'UTF8';\n"
			  . "SELECT rnnlm_perplexity('$name', "
			  . sql_literal($doc) . ')');
	}
	if ($tokenizer eq 'bpe')
	{
		ok($eod_last && !$specials_inside,
			"$name: every document ends with <eod>, bpe gives neither <eod> nor <unk> inside");
	}
	else
	{
		ok($eod_last && $unk_seen,
			"$name: every document ends with <eod>, unseen tokens give <unk>");
	}

	# The reference's tokenizer gives the same ids.
	my $texts_file = "$tmp/$name.texts.json";
	write_file($texts_file, texts_json($docs));
	my $ref_ids = reference_json('--encode', $model_file, $texts_file)->{ids};
	my $ids_ok = @$ref_ids == @ids;
	for my $d (0 .. $#ids)
	{
		next if join(',', @{ $ref_ids->[$d] // [] }) eq join(',', @{ $ids[$d] });
		diag("$name doc $d: rnnlm's ids " . show_ids($ids[$d])
			  . ", the reference's " . show_ids($ref_ids->[$d] // []));
		$ids_ok = 0;
	}
	ok($ids_ok, "$name: the reference tokenizes every text into rnnlm's token ids");

	# The reference's scores for the same ids.
	my $docs_file = "$tmp/$name.json";
	write_file($docs_file, encode_json(\@ids));
	my $ref = reference_json($model_file, $docs_file)->{docs};

	my $max_diff = 0;
	my $count_ok = 1;
	my $reported = 0;
	for my $d (0 .. $#ids)
	{
		my ($got, $want) = ($sql_lp[$d], $ref->[$d]);
		if (@$got != @$want)
		{
			diag("$name doc $d: rnnlm gives "
				  . scalar(@$got)
				  . ' scores, the reference '
				  . scalar(@$want));
			$count_ok = 0;
			next;
		}
		for my $i (0 .. $#$got)
		{
			my $diff = abs($got->[$i] - $want->[$i]);
			$diff = 9**9**9 if $diff != $diff;    # NaN
			diag(sprintf("%s doc %d position %d (token id %d): rnnlm %.9g reference %.9g",
					$name, $d, $i, $i < @{ $ids[$d] } ? $ids[$d][$i] : 0,
					$got->[$i], $want->[$i]))
			  if $diff >= $tolerance && $reported++ < $max_reports;
			$max_diff = $diff if $diff > $max_diff;
		}
	}
	diag("$name: " . ($reported - $max_reports) . ' more positions differ')
	  if $reported > $max_reports;
	ok($count_ok && $max_diff < $tolerance,
		sprintf("%s: log-probabilities match the reference (max diff %.3g)",
			$name, $max_diff));

	# rnnlm_perplexity is exp(-mean log-probability).
	my $max_rel = 0;
	for my $d (0 .. $#ids)
	{
		my $lp = $ref->[$d];
		my $expect = exp(-sum(@$lp) / @$lp);
		my $rel = abs($sql_ppl[$d] - $expect) / $expect;
		$rel = 9**9**9 if $rel != $rel;
		diag(sprintf("%s doc %d: rnnlm_perplexity %.9g reference %.9g",
				$name, $d, $sql_ppl[$d], $expect))
		  if $rel >= $tolerance;
		$max_rel = $rel if $rel > $max_rel;
	}
	ok($max_rel < $tolerance,
		sprintf("%s: perplexity matches the reference (max rel diff %.3g)",
			$name, $max_rel));

	# bpe: the reference learns the same vocabulary and merges from the corpus.
	if ($tokenizer eq 'bpe')
	{
		my $corpus_file = "$tmp/$name.corpus.json";
		write_file($corpus_file, texts_json(\@corpus));
		my $learned = reference_json('--learn', $model_file, $corpus_file,
			'--max-vocab', $opts->{max_vocab});
		ok($learned->{same},
			"$name: the reference learns the model's $learned->{merges} merges from the corpus")
		  or diag(encode_json($learned));
	}
}

foreach my $tokenizer ('word', 'char')
{
	foreach my $cell ('rnn', 'lstm', 'gru')
	{
		check_model("ref_${cell}_${tokenizer}", { cell => $cell, tokenizer => $tokenizer },
			$test_docs{$tokenizer});
	}
}
foreach my $cell ('rnn', 'lstm', 'gru')
{
	check_model("ref_${cell}_bpe", { cell => $cell, tokenizer => 'bpe', max_vocab => 340 },
		$test_docs{bpe});
}
# A model whose embeddings start from given vectors and stay frozen.
$node->safe_psql($db, q{
CREATE TABLE vectors AS
SELECT w AS token, array_agg(round(sin(i * 7 + k)::numeric, 3)::real ORDER BY k) AS vec
  FROM unnest(ARRAY['the', 'train', 'leaves', 'at', 'noon', 'a', 'of', 'and']) WITH ORDINALITY AS u(w, i),
       generate_series(1, 8) AS k
 GROUP BY w, i});
check_model('ref_lstm_word_frozen',
	{ cell => 'lstm', tokenizer => 'word', freeze_embeddings => JSON::PP::true,
	  embeddings_query => 'SELECT token, vec FROM vectors' },
	$test_docs{word});
{
	# the reference's reading of the stored embedding rows against the vectors given
	my %want;
	foreach my $row (split /\n/, $node->safe_psql($db, q{
SELECT t.token_id, array_to_string(v.vec::float8[], ' ')
  FROM vectors v, rnnlm_token_logprobs('ref_lstm_word_frozen', v.token) t
 WHERE t.position = 1 AND t.token_id > 1}))
	{
		my ($id, $vec) = split /\|/, $row;
		$want{$id} = [ map { $_ + 0 } split / /, $vec ];
	}
	my ($out) = run_or_die($python, '-c',
		'import json, sys; sys.path.insert(0, sys.argv[1]); import reference; '
		  . 'm = reference.parse_model(open(sys.argv[2], "rb").read()); '
		  . 'print(json.dumps([m["emb"][int(i)].tolist() for i in sys.argv[3:]]))',
		dirname($reference), "$tmp/ref_lstm_word_frozen.bin", sort { $a <=> $b } keys %want);
	my $got = decode_json($out);
	my @ids = sort { $a <=> $b } keys %want;
	my $same = @ids >= 5;
	for my $k (0 .. $#ids)
	{
		my ($g, $w) = ($got->[$k], $want{ $ids[$k] });
		$same &&= @$g == @$w && !grep { $g->[$_] != $w->[$_] } 0 .. $#$w;
	}
	ok($same, sprintf('ref_lstm_word_frozen: after training, the reference reads the %d given vectors '
		  . 'of words in the vocabulary, bit for bit, as their embedding rows', scalar @ids))
	  or diag("ids @ids; got $out");
}
check_model(
	'ref_gru_bpe_nfkc',
	{
		cell => 'gru',
		tokenizer => 'bpe',
		max_vocab => 320,
		lowercase => JSON::PP::true,
		normalize => 'nfkc'
	},
	$test_docs{bpe});

$node->stop;
done_testing();
