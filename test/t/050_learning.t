# Checks that every cell actually learns: a character model trained on the
# 200,000 characters of test/data/shakespeare.txt (one document per line,
# the last 10% of lines held out) must reach a validation loss below 2.35
# nats per token in three epochs.  A bpe model (LSTM, max_vocab 4000) on the
# same data with the same sizes and epochs must reach at most 3.4 bits per
# character: the total bits rnnlm_evaluate gives the validation lines, over
# their characters (each line's end counted as one, as the char models'
# end-of-document token), which for a char model is its loss in bits per
# token; the char models' figures are reported beside it.  Where the processor has bf16 instructions
# and rnnlm runs bf16 there, each cell trained with precision bf16 must meet
# the same threshold and come within 0.05 nats of its fp32 loss; elsewhere
# that part is skipped with a message (the core tests check bf16 training on
# the portable reference backend on every machine).
use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use Encode qw(decode encode);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use RnnlmTest;

my $data_file = RnnlmTest::test_data('shakespeare.txt');

my $max_chars = 200_000;
my $threshold = 2.35;

# Returns the first $n characters of a UTF-8 file, split into lines.
sub read_lines
{
	my ($path, $n) = @_;
	open(my $fh, '<:raw', $path) or die "cannot read $path: $!";
	local $/;
	my $text = decode('UTF-8', scalar <$fh>);
	close($fh);
	$text = substr($text, 0, $n);
	$text =~ s/\r\n/\n/g;
	my @lines = split /\n/, $text, -1;
	pop @lines if @lines && $lines[-1] eq '';    # text ended with a newline
	return @lines;
}

# Escapes a value for COPY's text format.
sub copy_escape
{
	my ($s) = @_;
	$s =~ s/\\/\\\\/g;
	$s =~ s/\t/\\t/g;
	$s =~ s/\r/\\r/g;
	$s =~ s/\n/\\n/g;
	return $s;
}

my @lines = read_lines($data_file, $max_chars);
note(scalar(@lines) . " lines loaded from $data_file");

my $node = RnnlmTest::new_node('learning');

# Load client-side: the COPY data follows the command on psql's input.
my $copy = "SET client_encoding = 'UTF8';\n"
  . "CREATE TABLE shakes (id int PRIMARY KEY, line text NOT NULL);\n"
  . "COPY shakes (id, line) FROM STDIN;\n";
for my $i (0 .. $#lines)
{
	$copy .= ($i + 1) . "\t" . copy_escape($lines[$i]) . "\n";
}
$copy .= "\\.\n";
$node->safe_psql('postgres', encode('UTF-8', $copy));
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) || ' ' || md5(string_agg(line, E'\\n' ORDER BY id)) FROM shakes"
	),
	scalar(@lines) . ' ' . md5_hex(encode('UTF-8', join("\n", @lines))),
	'corpus loaded, one row per line');

# Trains a model of the cell in the precision (a char model, or the tokenizer
# given); returns its validation loss and the training summary.
sub train_cell
{
	my ($cell, $precision, $tokenizer, %extra) = @_;
	$tokenizer //= 'char';
	my $name = "shakes_${cell}_${precision}_$tokenizer";
	my $options = encode_json(
		{
			%extra,
			cell => $cell,
			precision => $precision,
			tokenizer => $tokenizer,
			num_layers => 1,
			hidden_size => 128,
			embedding_dim => 32,
			batch_size => 32,
			seq_len => 64,
			learning_rate => 0.002,
			epochs => 3,
			validation_fraction => 0.1,
			seed => 42
		});
	my $out = $node->safe_psql('postgres',
		"SELECT rnnlm_train('$name', 'SELECT line FROM shakes ORDER BY id', "
		  . "'$options')");
	note("$name: $out");
	my $summary = decode_json($out);
	return wantarray ? ($summary->{val_loss}, $summary) : $summary->{val_loss};
}

# Bits per character of a model on the validation lines (the last k lines,
# held out by training): the total bits of rnnlm_evaluate (each line scored
# from its start) over their characters, each line's end counted as one.
sub bits_per_char
{
	my ($summary) = @_;
	my $k = $summary->{validation_documents};
	my $first = scalar(@lines) - $k + 1;
	my $chars = 0;
	$chars += length($_) + 1 for @lines[ $first - 1 .. $#lines ];
	my $ev = decode_json($node->safe_psql('postgres',
			"SELECT rnnlm_evaluate('$summary->{model}', 'SELECT line FROM shakes WHERE id >= $first ORDER BY id')"));
	return ($ev->{loss} * $ev->{tokens} / log(2) / $chars, $ev->{tokens}, $chars);
}

my (%fp32, %bpc, %summary);
foreach my $cell ('lstm', 'gru', 'rnn')
{
	my ($val_loss, $summary) = train_cell($cell, 'fp32');
	$fp32{$cell} = $val_loss;
	my ($bits, $tokens, $chars) = bits_per_char($summary);
	$bpc{$cell} = $bits;
	$summary{$cell} = [$tokens, $chars];
	ok(defined $val_loss && $val_loss < $threshold,
		sprintf("%s: val_loss %s < %s", $cell,
			defined $val_loss ? sprintf('%.4f', $val_loss) : 'NULL',
			$threshold));
}

# bpe on the same data: bits per character, beside the char models'
{
	my ($val_loss, $summary) = train_cell('lstm', 'fp32', 'bpe', max_vocab => 4000);
	my ($bits) = bits_per_char($summary);
	ok(defined $val_loss && $bits <= 3.4,
		sprintf('bpe (lstm, max_vocab 4000, %d tokens): %.3f bits per character <= 3.4; '
			  . 'char models: lstm %.3f, gru %.3f, rnn %.3f', $summary->{vocab_size}, $bits,
			$bpc{lstm}, $bpc{gru}, $bpc{rnn}));
	is($summary{lstm}->[0], $summary{lstm}->[1],
		'for a char model the characters counted are its validation tokens, so bits per character '
		  . 'is its loss in bits per token');
}

my $bf16 = $node->safe_psql('postgres', q{
	SELECT rnnlm_runtime()->'products'->'bf16' IS NOT NULL
	   AND rnnlm_runtime()->'cpu'->'features' ?| ARRAY['avx512_bf16', 'amx_bf16']});
SKIP:
{
	skip 'this processor has no bf16 instructions (AVX512_BF16 or AMX-BF16), or no backend runs them: '
	  . 'the bf16 learning check runs where it has them', 3
	  unless $bf16 eq 't';
	foreach my $cell ('lstm', 'gru', 'rnn')
	{
		my $val_loss = train_cell($cell, 'bf16');
		ok(defined $val_loss && $val_loss < $threshold && abs($val_loss - $fp32{$cell}) < 0.05,
			sprintf("%s in bf16: val_loss %s < %s, within 0.05 of fp32 (%.4f)", $cell,
				defined $val_loss ? sprintf('%.4f', $val_loss) : 'NULL',
				$threshold, $fp32{$cell}));
	}
}

$node->stop;
done_testing();
