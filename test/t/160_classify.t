# Language-model classification is accurate: one small char model per
# language, trained on lines of English (Shakespeare, test/data/shakespeare.txt),
# German (quotations, Debian's fortunes-de) and Chinese (Debian's
# fortunes-zh), and rnnlm_classify must put at least 95% of the held-out
# lines of each language (every tenth line, never trained on) in the right
# class.  rnnlm_classify_scores must agree with it row by row.
use strict;
use warnings;

use Encode qw(decode encode);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $shakespeare = RnnlmTest::test_data('shakespeare.txt');
my %package = (
	'/usr/share/games/fortunes/de/zitate' => 'fortunes-de',
	'/usr/share/games/fortunes/chinese' => 'fortunes-zh');
for my $path (sort keys %package)
{
	plan skip_all => "$path not found: install $package{$path} (test/deps.sh does)"
	  unless -r $path;
}

# The first $max lines of a file of at least 12 characters, without the
# fortune separators (a line of %), attributions (-- name) and terminal
# colour codes.
sub lines_of
{
	my ($path, $max) = @_;
	open(my $fh, '<:raw', $path) or die "cannot read $path: $!";
	my @out;
	while (my $line = <$fh>)
	{
		$line = decode('UTF-8', $line);
		$line =~ s/\e\[[0-9;]*m//g;
		$line =~ s/\s+\z//;
		$line =~ s/\A\s+//;
		next if length($line) < 12 || $line =~ /\A(?:%|--)/;
		push @out, $line;
		last if @out >= $max;
	}
	close $fh;
	return @out;
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

my %corpus = (
	english => [ lines_of($shakespeare, 3000) ],
	german => [ lines_of('/usr/share/games/fortunes/de/zitate', 3000) ],
	chinese => [ lines_of('/usr/share/games/fortunes/chinese', 3000) ]);
my @models = map { "lm_$_" } sort keys %corpus;
my $models = "ARRAY['" . join("', '", @models) . "']";
note(join(', ', map { scalar(@{ $corpus{$_} }) . " lines of $_" } sort keys %corpus));

my $node = RnnlmTest::new_node('classify');
my $copy = "SET client_encoding = 'UTF8';\n"
  . "CREATE TABLE lines (kind text, id int, line text, held_out bool);\n"
  . "COPY lines FROM STDIN;\n";
for my $kind (sort keys %corpus)
{
	my $i = 0;
	for my $line (@{ $corpus{$kind} })
	{
		$copy .= "$kind\t$i\t" . copy_escape($line) . "\t" . ($i % 10 == 9 ? 't' : 'f') . "\n";
		$i++;
	}
}
$copy .= "\\.\n";
$node->safe_psql('postgres', encode('UTF-8', $copy));

for my $kind (sort keys %corpus)
{
	my $options = encode_json(
		{
			cell => 'gru',
			tokenizer => 'char',
			num_layers => 1,
			hidden_size => 64,
			embedding_dim => 16,
			batch_size => 16,
			seq_len => 64,
			learning_rate => 0.005,
			epochs => 3,
			seed => 11
		});
	my $out = $node->safe_psql('postgres',
		"SELECT rnnlm_train('lm_$kind', \$\$SELECT line FROM lines WHERE kind = '$kind' "
		  . "AND NOT held_out ORDER BY id\$\$, '$options')");
	note("lm_$kind: $out");
}

my $result = $node->safe_psql('postgres', qq{
SELECT kind, count(*), count(*) FILTER (WHERE rnnlm_classify($models, line) = 'lm_' || kind)
  FROM lines WHERE held_out GROUP BY kind ORDER BY kind});
for my $row (split /\n/, $result)
{
	my ($kind, $n, $right) = split /\|/, $row;
	ok($n >= 40 && $right >= 0.95 * $n,
		sprintf('%s: %d of %d held-out lines (%.1f%%) classified right, at least 95%%',
			$kind, $right, $n, 100 * $right / $n));
}
is(scalar(split /\n/, $result), 3, 'every language has held-out lines');

is( $node->safe_psql('postgres', qq{
SELECT count(*)
  FROM lines l,
       LATERAL (SELECT model FROM rnnlm_classify_scores($models, l.line)
                 ORDER BY probability DESC, loss LIMIT 1) s
 WHERE held_out AND s.model <> rnnlm_classify($models, l.line)}),
	'0', 'rnnlm_classify_scores ranks first the class rnnlm_classify picks, on every line');

$node->stop;
done_testing();
