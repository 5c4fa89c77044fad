# Fuzzing the model file reader: thousands of mutated model files (doc/format.md)
# go through rnnlm_import and through the loader (a mutated blob written into a
# model row with UPDATE, then rnnlm_perplexity).  Every one must either be
# rejected with an ERROR (XX001 data_corrupted, or 54000 program_limit_exceeded
# for an allocation over rnnlm.max_memory) or give a model that works:
# perplexities, token log-probabilities, rnnlm_evaluate and generated text
# (see $ALLOW_INF_PERPLEXITY below).  The server must never crash and never
# run out of memory.
#
# The mutations start from real blobs of tiny models of each cell type and
# tokenizer: bit flips with and without the CRC recomputed, truncations,
# extensions, absurd header values, broken vocabularies, non-finite weights,
# and consistent rewrites that must load.  They are generated here from a
# fixed seed (RNNLM_FUZZ_SEED overrides it), copied into a table, and run by
# one PL/pgSQL function in batches, each case inside exception blocks, with
# the outcome recorded in a table and checked from here.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

# A model that loaded "works" when its perplexities are positive and not NaN,
# its token log-probabilities are <= 0 and not NaN, rnnlm_evaluate returns its
# numbers, and rnnlm_generate returns text.  A perplexity of +Infinity (and a
# log-probability of -Infinity) is allowed: it is the correctly rounded value
# for a valid model that gives a token a probability below e^-709 (a bias of
# 1000 is enough), so only rejecting such models could avoid it.  Set this to
# 0 to require finite values as well.
my $ALLOW_INF_PERPLEXITY = 1;

my $SEED = $ENV{RNNLM_FUZZ_SEED} // 20250611;
my $BATCH = 250;    # cases per statement (one transaction each)
my $t_start = time();

###########################################################################
# CRC-32 (zlib): Digest::CRC when installed, else zlib through the core module
# Compress::Raw::Zlib, else a table in pure Perl.

my @crc_table = map {
	my $c = $_;
	$c = ($c & 1) ? (0xEDB88320 ^ ($c >> 1)) : ($c >> 1) for 1 .. 8;
	$c
} 0 .. 255;

sub crc32_perl
{
	my $crc = 0xFFFFFFFF;
	$crc = $crc_table[ ($crc ^ $_) & 0xFF ] ^ ($crc >> 8) for unpack('C*', $_[0]);
	return $crc ^ 0xFFFFFFFF;
}

my ($crc32, $crc_impl);
if (eval { require Digest::CRC; 1 })
{
	$crc32 = sub { Digest::CRC::crc32($_[0]) };
	$crc_impl = 'Digest::CRC';
}
elsif (eval { require Compress::Raw::Zlib; 1 })
{
	$crc32 = sub { Compress::Raw::Zlib::crc32($_[0]) };
	$crc_impl = 'Compress::Raw::Zlib';
}
else
{
	$crc32 = \&crc32_perl;
	$crc_impl = 'pure Perl';
}
is(sprintf('%08x', $crc32->('123456789')), 'cbf43926', "CRC-32 ($crc_impl) gives the check value");

###########################################################################
# A deterministic generator (xorshift32), independent of Perl's rand.

my $rng = ($SEED % 0xFFFFFFFF) || 1;

sub rnd32
{
	$rng ^= ($rng << 13) & 0xFFFFFFFF;
	$rng ^= $rng >> 17;
	$rng ^= ($rng << 5) & 0xFFFFFFFF;
	return $rng;
}
sub rnd { return rnd32() % $_[0]; }
sub junk { return pack('C*', map { rnd(256) } 1 .. $_[0]); }

###########################################################################
# The model file: parse and build.

use constant MAGIC => "RNNLM\0\r\n";
my @GATES = (1, 4, 3);    # rnn, lstm, gru
my @HEADER = qw(version cell tok flags V E H L reserved);

sub nparams_for
{
	my ($cell, $V, $E, $H, $L) = @_;
	my $G = $GATES[$cell];
	my $t = $V * $E;
	$t += $G * $H * (($_ ? $H : $E) + $H + 1) for 0 .. $L - 1;
	return $t + $V * $H + $V;
}

sub with_crc { return $_[0] . pack('V', $crc32->($_[0])); }
sub fix_crc  { return with_crc(substr($_[0], 0, length($_[0]) - 4)); }

sub parse_blob
{
	my ($data) = @_;
	my %m;
	@m{@HEADER} = unpack('V9', substr($data, 8, 36));
	my ($lo, $hi) = unpack('V2', substr($data, 44, 8));
	$m{P} = $lo + $hi * 2**32;
	my $pos = 52;
	my (@vocab, @entry_at);
	for (1 .. $m{V})
	{
		my $n = unpack('V', substr($data, $pos, 4));
		push @entry_at, $pos;
		push @vocab, substr($data, $pos + 4, $n);
		$pos += 4 + $n;
	}
	$m{vocab} = \@vocab;
	$m{entry_at} = \@entry_at;
	$m{vocab_end} = $pos;
	$m{params} = substr($data, $pos, length($data) - 4 - $pos);
	return \%m;
}

# A blob from a parsed model, with fields overridden; P (or plo/phi) is
# written as given, so it may disagree with the shape.
sub build_blob
{
	my ($m, %o) = @_;
	my %h = (%$m, %o);
	my ($lo, $hi) =
	  defined $o{plo} ? ($o{plo}, $o{phi}) : ($h{P} % 2**32, int($h{P} / 2**32));
	my $data = ($h{magic} // MAGIC) . pack('V9', @h{@HEADER}) . pack('V2', $lo, $hi);
	$data .= pack('V', length $_) . $_ for @{ $h{vocab} };
	$data .= $h{params};
	return with_crc($data);
}

# A consistent model: the shape given, P and random small weights to match.
sub reshape
{
	my ($m, %o) = @_;
	my %h = (%$m, %o);
	$h{V} = scalar @{ $h{vocab} };
	my $P = nparams_for(@h{qw(cell V E H L)});
	return build_blob($m, %o, V => $h{V}, P => $P, params => rand_params($P));
}

sub rand_params
{
	return pack('f<*', map { (rnd(20001) - 10000) / 40000 } 1 .. $_[0]);
}

sub set_u32 { my ($data, $off, $v) = @_; substr($data, $off, 4) = pack('V', $v); return $data; }
sub flip_bit { my ($data, $bit) = @_; vec($data, $bit, 1) ^= 1; return $data; }

###########################################################################
# The cluster, a session kept open for the whole test, the base models.

my $node = RnnlmTest::new_node('fuzz');
my $canary = $node->background_psql('postgres');
my $canary_pid = $canary->query_safe('SELECT pg_backend_pid()');
my $postmaster_start = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');

$node->safe_psql('postgres', q{
CREATE TABLE corpus AS
  SELECT 'the printer ' || (ARRAY['jams', 'works', 'prints blank pages', 'is on fire',
                                  'needs paper', 'says café', 'costs 5 €'])[1 + i % 7]
         || ' on floor ' || (i % 5) AS body
    FROM generate_series(1, 40) i;
});

my @bases = (
	[ lstm_word => '{"cell": "lstm", "tokenizer": "word", "embedding_dim": 4, "hidden_size": 8, "num_layers": 2}' ],
	[ gru_char  => '{"cell": "gru", "tokenizer": "char", "embedding_dim": 6, "hidden_size": 8, "num_layers": 1}' ],
	[ rnn_char  => '{"cell": "rnn", "tokenizer": "char", "embedding_dim": 8, "hidden_size": 8, "num_layers": 2, "lowercase": true}' ],
	[ gru_word  => '{"cell": "gru", "tokenizer": "word", "embedding_dim": 5, "hidden_size": 8, "num_layers": 1, "lowercase": false}' ],
	[ lstm_char => '{"cell": "lstm", "tokenizer": "char", "embedding_dim": 4, "hidden_size": 8, "num_layers": 1}' ],
	[ rnn_word  => '{"cell": "rnn", "tokenizer": "word", "embedding_dim": 4, "hidden_size": 8, "num_layers": 1}' ],
);
my (%blob, %model);
for my $base (@bases)
{
	my ($name, $opts) = @$base;
	$opts =~ s/}$/, "epochs": 1, "batch_size": 8, "seq_len": 16}/;
	$node->safe_psql('postgres', qq{
SET client_min_messages = warning;
SELECT rnnlm_train('$name', 'SELECT body FROM corpus', '$opts');});
	$blob{$name} = pack('H*',
		$node->safe_psql('postgres', "SELECT encode(rnnlm_export('$name'), 'hex')"));
	$model{$name} = parse_blob($blob{$name});
}
my @base_names = map { $_->[0] } @bases;
is(join(' ', map { build_blob($model{$_}) eq $blob{$_} ? 'same' : 'differs' } @base_names),
	join(' ', ('same') x @base_names),
	'every base blob parses and rebuilds byte for byte, CRC included');
is(join(' ', map { sprintf('%08x', crc32_perl(substr($blob{$_}, 0, -4))) } @base_names),
	join(' ', map { sprintf('%08x', unpack('V', substr($blob{$_}, -4))) } @base_names),
	'the pure-Perl CRC-32 agrees with the stored checksums');

# The checks below rely on telling a rejection from a success by SQLSTATE.
{
	my $data = $blob{gru_char};
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT rnnlm_import('direct_ok', '\\x" . unpack('H*', $data) . "')->>'model'");
	is($out, 'direct_ok', 'an unmodified blob imports');
	($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT rnnlm_import('direct_bad', '\\x"
		  . unpack('H*', substr($data, 0, length($data) - 9)) . "')");
	like($err, qr/ERROR:  XX001: invalid rnnlm model data/, 'a truncated blob is rejected with XX001');
}

###########################################################################
# The mutations.

my $t_mutate = time();
my @cases;    # [base, kind, detail, expect, blob]; expect: accept, reject or any
my $base;     # the base the cases being generated start from

sub add { push @cases, [ $base, @_ ]; }

# A byte position: a third each in the header, the vocabulary and anywhere.
sub biased_pos
{
	my ($m, $len) = @_;
	my $r = rnd(3);
	return rnd(52) if $r == 0;
	return 52 + rnd($m->{vocab_end} - 52) if $r == 1;
	return rnd($len);
}

my @bad_utf8 = (
	"\xFF", "\x80", "\xC0\x80", "\xC1\xBF", "\xE0\x80\xAF", "\xED\xA0\x80",
	"\xE2\x82", "a\xC3", "\xF0\x80\x80\x80", "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80",
	"ok\xFE");
my @nan_inf = (
	[ 'NaN' => 0x7FC00000 ], [ 'sNaN' => 0x7F800001 ], [ '-NaN' => 0xFFC00000 ],
	[ 'NaN-payload' => 0x7FFFFFFF ], [ '+Inf' => 0x7F800000 ], [ '-Inf' => 0xFF800000 ]);

for my $name (@base_names)
{
	$base = $name;
	my $data = $blob{$name};
	my $m = $model{$name};
	my $n = length $data;
	my $c = $n - 4;            # bytes before the CRC
	my $V = $m->{V};
	my $P = $m->{P};
	my $pstart = $m->{vocab_end};
	my @vocab = @{ $m->{vocab} };
	my $mid = int($V / 2);

	add('unmodified', '', 'accept', $data);

	# bit flips and byte changes, the CRC recomputed: anything may come of them
	for (1 .. 700)
	{
		my $pos = biased_pos($m, $c);
		my $bit = rnd(8);
		add('flip1-crc', "byte $pos bit $bit", 'any', fix_crc(flip_bit($data, $pos * 8 + $bit)));
	}
	for (1 .. 300)
	{
		my ($x, $k, @at) = ($data, 2 + rnd(7));
		for (1 .. $k)
		{
			my $pos = biased_pos($m, $c);
			push @at, $pos;
			$x = flip_bit($x, $pos * 8 + rnd(8));
		}
		add('flipN-crc', "$k flips at @at", 'any', fix_crc($x));
	}
	for (1 .. 200)
	{
		my $pos = biased_pos($m, $c);
		my $v = (0, 0xFF, 0x7F, 0x80, 0x01, rnd(256))[ rnd(6) ];
		my $x = $data;
		substr($x, $pos, 1) = chr $v;
		add('byte-crc', "byte $pos = $v", 'any', fix_crc($x));
	}
	# special words over every header field and the first vocabulary lengths
	for my $off ((map { 8 + 4 * $_ } 0 .. 10), @{ $m->{entry_at} }[ 0 .. 3 ])
	{
		for my $v (0, 1, 2, 3, 16, 1024, 1025, 16384, 16385, 2_000_000, 2_000_001,
			0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF)
		{
			add('word-crc', "u32 at $off = $v", 'any', fix_crc(set_u32($data, $off, $v)));
		}
	}
	# random spans of junk, the CRC recomputed
	for (1 .. 100)
	{
		my $pos = biased_pos($m, $c);
		my $k = 1 + rnd(64);
		$k = $c - $pos if $pos + $k > $c;
		my $x = $data;
		substr($x, $pos, $k) = junk($k);
		add('junk-crc', "$k bytes at $pos", 'any', fix_crc($x));
	}

	# without the CRC recomputed, the checksum (or the magic or version check
	# before it) catches every change
	for (1 .. 100)
	{
		my $k = rnd(3) ? 1 : 2 + rnd(7);
		my $x = $data;
		$x = flip_bit($x, rnd($n * 8)) for 1 .. $k;
		next if $x eq $data;
		add('flips-nocrc', "$k flips", 'reject', $x);
	}

	# truncations: at every position up to a few bytes into the parameters
	# with a new CRC over what is left, and a sample without one
	my @cut = (0 .. $pstart + 9);
	push @cut, $pstart + 10 + rnd($c - $pstart - 20) for 1 .. 40;
	push @cut, $c - 5 .. $c - 1;
	add('truncate-crc', "to $_ bytes + CRC", 'reject', with_crc(substr($data, 0, $_))) for @cut;
	my @cut_plain = (0, 1, 4, 7, 8, 11, 12, 40, 51, 52, 53, 55, 56, 57, 60);
	push @cut_plain, 52 + rnd($pstart - 52) for 1 .. 10;
	push @cut_plain, $pstart + rnd($c - $pstart) for 1 .. 10;
	push @cut_plain, $n - 5 .. $n - 1;
	add('truncate', "to $_ bytes", 'reject', substr($data, 0, $_)) for @cut_plain;

	# extensions
	add('append', "$_ bytes after the CRC", 'reject', $data . junk($_))
	  for 1, 2, 3, 4, 5, 8, 64, 4096;
	add('append-crc', "$_ bytes before a new CRC", 'reject', with_crc(substr($data, 0, $c) . junk($_)))
	  for 1, 3, 4, 8, 400;
	add('append-crc', 'one zero float more', 'reject', with_crc(substr($data, 0, $c) . "\0" x 4));
	add('append-crc', 'the CRC of the whole blob after it', 'reject', with_crc($data));
	{
		my $x = $data;
		substr($x, $pstart, 0) = junk(8);
		add('insert-crc', '8 bytes between vocabulary and parameters', 'reject', fix_crc($x));
	}

	# absurd header values (the rest unchanged)
	for my $i (0 .. 7)
	{
		my $magic = MAGIC;
		substr($magic, $i, 1) = chr(ord(substr($magic, $i, 1)) ^ 0x20);
		add('header-crc', "magic byte $i", 'reject', build_blob($m, magic => $magic));
	}
	add('header-crc', 'magic zero', 'reject', build_blob($m, magic => "\0" x 8));
	my %absurd = (
		version  => [ 0, 2, 3, 0x100, 0x01000000, 0xFFFFFFFF ],
		cell     => [ 3, 4, 0xFF, 0x80000000, 0xFFFFFFFF ],
		tok      => [ 2, 3, 0x100, 0xFFFFFFFF ],
		flags    => [ 2, 3, 0x100, 0x80000000, 0xFFFFFFFF ],
		V        => [ 0, 1, 2, $V - 1, $V + 1, 2_000_000, 2_000_001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF ],
		E        => [ 0, $m->{E} + 1, 16384, 16385, 0x80000000, 0xFFFFFFFF ],
		H        => [ 0, $m->{H} - 1, 16384, 16385, 0x80000000, 0xFFFFFFFF ],
		L        => [ 0, $m->{L} + 1, 16, 17, 2**31, 0xFFFFFFFF ],
		reserved => [ 1, 0x100, 0x80000000, 0xFFFFFFFF ]);
	for my $f (sort keys %absurd)
	{
		for my $v (@{ $absurd{$f} })
		{
			add('header-crc', "$f = $v", 'reject', build_blob($m, $f => $v));
			# with P made to agree, for the shape fields (and no more data)
			next unless $f =~ /^[VEHL]$/ && $v > 0;
			my %s = (%$m, $f => $v);
			next if $s{L} > 1000;
			add('header-crc', "$f = $v, P agreeing", 'reject',
				build_blob($m, $f => $v, P => nparams_for(@s{qw(cell V E H L)})));
		}
	}
	for my $p ([ 0, 0 ], [ ($P - 1), 0 ], [ ($P + 1), 0 ], [ $P, 1 ], [ 0xFFFFFFFF, 0 ],
		[ 0xFFFFFFFF, 0xFFFFFFFF ], [ 0, 0x80000000 ], [ $P * 4, 0 ], [ $P, 0x40000000 ])
	{
		add('nparams-crc', "P = $p->[1] << 32 | $p->[0]", 'reject',
			build_blob($m, plo => $p->[0], phi => $p->[1]));
	}
	# the biggest shape the limits allow, P agreeing: the data cannot hold it
	add('nparams-crc', 'maximal shape, P agreeing', 'reject',
		build_blob($m, E => 16384, H => 16384, L => 16,
			P => nparams_for($m->{cell}, $V, 16384, 16384, 16)));
	add('nparams-crc', 'V = 2,000,000, E = H = 1, P agreeing', 'reject',
		build_blob($m, V => 2_000_000, E => 1, H => 1, L => 1,
			P => nparams_for($m->{cell}, 2_000_000, 1, 1, 1)));

	# huge vocabulary counts that the bytes left could almost hold
	{
		my $rest = $c - 52;
		for my $v (int($rest / 5), int($rest / 5) + 1, int($rest / 9), $V * 2)
		{
			add('vocab-count-crc', "V = $v", 'reject', build_blob($m, V => $v));
			add('vocab-count-crc', "V = $v, P agreeing", 'reject',
				build_blob($m, V => $v, P => nparams_for(@$m{qw(cell)}, $v, @$m{qw(E H L)})));
		}
	}

	# vocabulary entries: lengths
	for my $i (0, 1, 2, $mid, $V - 1)
	{
		my $at = $m->{entry_at}[$i];
		my $len = length $vocab[$i];
		for my $v (0, 1025, 0xFFFFFFF0, 0xFFFFFFFF, 0x80000000, $c)
		{
			add('vocab-length-crc', "entry $i length $v", 'reject', fix_crc(set_u32($data, $at, $v)));
		}
		for my $v ($len - 1, $len + 1, 1024)
		{
			next if $v < 1;
			add('vocab-length-crc', "entry $i length $v (misaligned)", 'any', fix_crc(set_u32($data, $at, $v)));
		}
	}
	# vocabulary entries: contents, the lengths consistent
	my $with_entry = sub {
		my ($i, $t) = @_;
		my @v = @vocab;
		$v[$i] = $t;
		return build_blob($m, vocab => \@v);
	};
	for my $i (0, 2, $mid, $V - 1)
	{
		for my $k (0 .. $#bad_utf8)
		{
			add('vocab-utf8-crc', "entry $i invalid UTF-8 #$k", 'reject', $with_entry->($i, $bad_utf8[$k]));
		}
		add('vocab-empty-crc', "entry $i empty", 'reject', $with_entry->($i, ''));
		add('vocab-long-crc', "entry $i 1025 bytes", 'reject', $with_entry->($i, 'x' x 1025));
	}
	add('vocab-dup-crc', 'entry 2 = <eod>', 'reject', $with_entry->(2, '<eod>'));
	add('vocab-dup-crc', 'entry 3 = <unk>', 'reject', $with_entry->(3, '<unk>'));
	add('vocab-dup-crc', 'last = entry 2', 'reject', $with_entry->($V - 1, $vocab[2]));
	add('vocab-dup-crc', 'mid = mid + 1', 'reject', $with_entry->($mid, $vocab[ $mid + 1 ]));
	{
		my @v = @vocab;
		@v[ 0, 1 ] = @v[ 1, 0 ];
		add('vocab-special-crc', 'entries 0 and 1 swapped', 'reject', build_blob($m, vocab => \@v));
		@v = @vocab;
		@v[ 0, 2 ] = @v[ 2, 0 ];
		add('vocab-special-crc', 'entries 0 and 2 swapped', 'reject', build_blob($m, vocab => \@v));
		@v = @vocab;
		@v[ 1, $V - 1 ] = @v[ $V - 1, 1 ];
		add('vocab-special-crc', 'entries 1 and last swapped', 'reject', build_blob($m, vocab => \@v));
	}
	add('vocab-special-crc', "entry 0 = $_", 'reject', $with_entry->(0, $_))
	  for '<EOD>', '<eod> ', "<eod>\0", '<eo', 'xeod>';
	add('vocab-special-crc', "entry 1 = $_", 'reject', $with_entry->(1, $_))
	  for '<UNK>', '<unk', '<unk>>';

	# non-finite weights
	for my $k (0, 1, (map { rnd($P) } 1 .. 8), $P - $V, $P - 1)
	{
		for my $f (@nan_inf)
		{
			my $x = $data;
			substr($x, $pstart + 4 * $k, 4) = pack('V', $f->[1]);
			add('weight-nonfinite-crc', "parameter $k = $f->[0]", 'reject', fix_crc($x));
		}
	}

	# consistent rewrites, which must load and work
	add('valid-rewrite', 'all weights zero', 'accept', build_blob($m, params => "\0" x (4 * $P)));
	{
		my $x = $data;
		substr($x, $pstart + 4 * rnd($P), 4) = pack('V', $_->[1]) for
		  [ denormal => 0x00000001 ], [ '-0' => 0x80000000 ], [ FLT_MIN => 0x00800000 ];
		add('valid-rewrite', 'denormal, -0 and FLT_MIN weights', 'accept', fix_crc($x));
	}
	add('valid-rewrite', 'flags toggled (lowercase)', 'accept', build_blob($m, flags => $m->{flags} ^ 1));
	add('valid-rewrite', 'tokenizer switched', 'accept', build_blob($m, tok => $m->{tok} ^ 1));
	add('valid-rewrite', "cell $_, weights to match", 'accept', reshape($m, cell => $_))
	  for grep { $_ != $m->{cell} } 0 .. 2;
	add('valid-rewrite', 'E = H = L = 1', 'accept', reshape($m, E => 1, H => 1, L => 1));
	add('valid-rewrite', 'L = 16, H = 2', 'accept', reshape($m, L => 16, H => 2));
	add('valid-rewrite', 'E = 1, H = 16, L = 3', 'accept', reshape($m, E => 1, H => 16, L => 3));
	add('valid-rewrite', 'one entry more', 'accept', reshape($m, vocab => [ @vocab, 'zz-new' ]));
	add('valid-rewrite', 'one entry fewer', 'accept', reshape($m, vocab => [ @vocab[ 0 .. $V - 2 ] ]));
	add('valid-rewrite', 'V = 3', 'accept', reshape($m, vocab => [ @vocab[ 0 .. 2 ] ]));
	add('valid-rewrite', 'entry of 1024 bytes', 'accept', $with_entry->($mid, "\xC3\xA9" x 512));
	add('valid-rewrite', 'entry with U+1D11E', 'accept', $with_entry->(2, "\xF0\x9D\x84\x9E"));
	add('valid-rewrite', 'entry with U+FFFD', 'accept', $with_entry->($V - 1, "\xEF\xBF\xBD"));
	add('valid-rewrite', 'entry with spaces', 'accept', $with_entry->($mid, ' a b '));

	# a token with a NUL byte (that generation would prefer): text in
	# PostgreSQL cannot hold NUL, so the format rejects it
	{
		my @v = @vocab;
		$v[2] = "n\0l";
		my $params = $m->{params};
		substr($params, 4 * ($P - $V + 2), 4) = pack('f<', 40.0);
		add('nul-token', 'entry 2 = "n\0l", favoured', 'reject',
			build_blob($m, vocab => \@v, params => $params));
	}
	# extreme but finite weights
	{
		my $x = $data;
		substr($x, $pstart + 4 * ($P - 1), 4) = pack('V', 0x7F7FFFFF);
		add('valid-extreme-weights', 'last bias = FLT_MAX', 'accept', fix_crc($x));
		my $scaled = pack('f<*', map { $_ * 1e30 } unpack('f<*', $m->{params}));
		add('valid-extreme-weights', 'every weight times 1e30', 'accept', build_blob($m, params => $scaled));
		my $big = pack('f<*', map { $_ < 0 ? -3e38 : 3e38 } unpack('f<*', $m->{params}));
		add('valid-extreme-weights', 'every weight +-3e38', 'accept', build_blob($m, params => $big));
	}
}
my $ncases = scalar @cases;
my %by_kind;
$by_kind{ $_->[1] }++ for @cases;
note "$ncases cases (seed $SEED): "
  . join(', ', map { "$_ $by_kind{$_}" } sort keys %by_kind);
cmp_ok($ncases, '>=', 10_000, "at least 10,000 mutated blobs ($ncases)");

###########################################################################
# Into the database.

$node->safe_psql('postgres', q{
CREATE TABLE fz_case (id int PRIMARY KEY, base text, kind text, detail text,
                      expect text, blob bytea);
CREATE TABLE fz_result (
    id        int NOT NULL,
    path      text NOT NULL,       -- import or load
    state     text NOT NULL,       -- ok, or the SQLSTATE the blob was rejected with
    msg       text,
    use_state text,                -- once accepted: ok, or the SQLSTATE of a failure
    use_msg   text,
    ppl       float8,
    ppls      float8[],
    gen       text[],
    evaluate  jsonb,
    nan_lp    int,                 -- token log-probabilities NaN or above 0
    inf_lp    int,                 -- token log-probabilities -Infinity
    n_lp      int,
    PRIMARY KEY (id, path));

-- One case on one path: rnnlm_import, or the loader through an UPDATE of
-- the row fz_load; then, once accepted, every way of using the model.
CREATE FUNCTION fz_one(p_id int, p_path text, p_blob bytea) RETURNS void
LANGUAGE plpgsql AS $fz$
DECLARE
    mname  text := CASE p_path WHEN 'import' THEN 'fz_imp' ELSE 'fz_load' END;
    st     text := 'ok';
    m      text;
    ust    text;
    um     text;
    d      text;
    v_ppl  float8;
    v_ppls float8[];
    v_gen  text[];
    v_eval jsonb;
    v_nan  int;
    v_inf  int;
    v_n    int;
BEGIN
    IF p_path = 'import' THEN
        BEGIN
            PERFORM rnnlm_import('fz_imp', p_blob);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
        END;
    ELSE
        UPDATE rnnlm.model SET weights = p_blob WHERE name = 'fz_load';
        BEGIN
            v_ppl := rnnlm_perplexity('fz_load', 'the printer jams');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
        END;
    END IF;
    IF st = 'ok' THEN
        ust := 'ok';
        BEGIN
            v_ppl := rnnlm_perplexity(mname, 'the printer jams');
            v_ppls := rnnlm_perplexity(mname, ARRAY['the printer jams on floor 3',
                                                    'Café costs 5 € ?', '', NULL]);
            v_gen := ARRAY[rnnlm_generate(mname, 'the', 12, 1.0, 0, 1.0, 7),
                           rnnlm_generate(mname, '', 8, 0.0),
                           rnnlm_generate(mname, 'pr', 8, 0.8, 5, 0.9, 11)];
            SELECT count(*) FILTER (WHERE NOT t.logprob <= 0),
                   count(*) FILTER (WHERE t.logprob = '-Infinity'),
                   count(*)
              INTO v_nan, v_inf, v_n
              FROM rnnlm_token_logprobs(mname, 'the printer is') t;
            v_eval := rnnlm_evaluate(mname, 'SELECT body FROM corpus WHERE body LIKE ''%fire%''');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS ust = RETURNED_SQLSTATE, um = MESSAGE_TEXT,
                                    d = PG_EXCEPTION_DETAIL;
            um := um || coalesce(nullif(' (' || d || ')', ' ()'), '');
        END;
        IF p_path = 'import' THEN
            PERFORM rnnlm_drop('fz_imp');
        END IF;
    END IF;
    INSERT INTO fz_result VALUES (p_id, p_path, st, m, ust, um, v_ppl, v_ppls, v_gen, v_eval,
                                  v_nan, v_inf, v_n);
END
$fz$;

CREATE FUNCTION fz_run(lo int, hi int) RETURNS text
LANGUAGE plpgsql AS $fz$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT id, blob FROM fz_case WHERE id BETWEEN lo AND hi ORDER BY id LOOP
        PERFORM fz_one(c.id, 'import', c.blob);
        PERFORM fz_one(c.id, 'load', c.blob);
    END LOOP;
    RETURN current_setting('rnnlm.max_memory');
END
$fz$;
});
# the row the loader path rewrites
$node->safe_psql('postgres',
	"SELECT rnnlm_import('fz_load', rnnlm_export('lstm_word'))");

my $t_gen = time();
{
	my ($id, $sql) = (0, '');
	my $flush = sub {
		return unless length $sql;
		my ($ret, $out, $err) = $node->psql('postgres', "COPY fz_case FROM stdin;\n$sql\\.\n");
		die "COPY failed: $err" if $ret != 0;
		$sql = '';
	};
	for my $case (@cases)
	{
		my ($bname, $kind, $detail, $expect, $blob) = @$case;
		$detail =~ s/[^\x20-\x5B\x5D-\x7E]/?/g;
		$sql .= join("\t", $id++, $bname, $kind, $detail, $expect, '\\\\x' . unpack('H*', $blob)) . "\n";
		$flush->() if length($sql) > 8_000_000;
	}
	$flush->();
}
@cases = ();
is($node->safe_psql('postgres', 'SELECT count(*) FROM fz_case'), $ncases, 'every case is in the table');

my $t_run = time();
my ($run_ret, $run_out, $run_err) = $node->psql('postgres',
	"SET rnnlm.max_memory = '64MB';\n"
	  . join('', map { "SELECT fz_run($_, " . ($_ + $BATCH - 1) . ");\n" }
		  grep { $_ % $BATCH == 0 } 0 .. $ncases - 1),
	timeout => 900);
my $t_done = time();
is($run_ret, 0, 'the fuzzing batches ran to the end') or diag($run_err);
is(join(',', sort keys %{ { map { $_ => 1 } split /\n/, $run_out } }), '64MB',
	'under rnnlm.max_memory = 64MB');
note sprintf('mutating %.1f s, copying %.1f s, running %d cases on two paths %.1f s',
	$t_gen - $t_mutate, $t_run - $t_gen, $ncases, $t_done - $t_run);

###########################################################################
# The outcomes.

my $ppl_ok = $ALLOW_INF_PERPLEXITY
  ? "(%s > 0 AND %s <= 'Infinity')"
  : "(%s > 0 AND %s < 'Infinity')";
my $works = sprintf(
	"(use_state = 'ok' AND %s AND gen IS NOT NULL AND array_position(gen, NULL) IS NULL
	  AND ppls[4] IS NULL AND %s AND %s AND %s AND nan_lp = 0 AND n_lp > 0
	  AND (inf_lp = 0 OR $ALLOW_INF_PERPLEXITY = 1)
	  AND (evaluate->>'documents')::int = 6
	  AND CASE WHEN evaluate->>'perplexity' IS NULL THEN $ALLOW_INF_PERPLEXITY = 1 ELSE %s END)",
	map { sprintf($ppl_ok, $_, $_) }
	  'ppl', 'ppls[1]', 'ppls[2]', 'ppls[3]', "(evaluate->>'perplexity')::float8");

# Is the server still up?  The outcomes are only there if it survived; the
# checks of that at the end run in any case.
sub server_up
{
	my ($ret) = $node->psql('postgres', 'SELECT 1');
	return $ret == 0;
}

# Up to 12 offending cases of a condition over fz_result r join fz_case c,
# the first of each kind first, as lines "total | id base kind (detail) path:
# outcome".
sub offenders
{
	my ($where) = @_;
	my $q = qq{
SELECT count(*) OVER () || ' | ' || r.id || ' ' || c.base || ' ' || c.kind || ' (' || c.detail || ') '
       || r.path || ': ' || r.state || coalesce(' ' || r.msg, '')
       || coalesce(' / use ' || r.use_state || coalesce(' ' || r.use_msg, ''), '')
       || coalesce(' / ppl ' || r.ppl, '') || coalesce(' ' || r.ppls::text, '')
  FROM fz_result r JOIN fz_case c USING (id)
 WHERE $where
 ORDER BY row_number() OVER (PARTITION BY c.kind, r.path ORDER BY r.id), c.kind, r.id, r.path
 LIMIT 12};
	return $node->safe_psql('postgres', $q);
}

# Passes when no case meets the condition; otherwise lists the first ones and
# saves their blobs (hex) under tmp_check/fuzz_failures/ID.hex.
sub check_none
{
	my ($where, $name) = @_;
	my $bad = offenders($where);
	my $n = $bad =~ /^(\d+) \|/ ? $1 : 0;
	return 1 if is($n, 0, $name);
	my $dir = "$PostgreSQL::Test::Utils::tmp_check/fuzz_failures";
	mkdir $dir;
	for my $line (split /\n/, $bad)
	{
		my ($id) = $line =~ /^\d+ \| (\d+) / or next;
		next if -e "$dir/$id.hex";
		open(my $fh, '>', "$dir/$id.hex") or next;
		print $fh $node->safe_psql('postgres', "SELECT encode(blob, 'hex') FROM fz_case WHERE id = $id"), "\n";
		close $fh;
	}
	diag("first offenders (blobs in $dir):\n$bad");
	return 0;
}

if (ok(server_up(), 'the server is up after the fuzzing'))
{
	is($node->safe_psql('postgres', 'SELECT count(*) FROM fz_result'), 2 * $ncases,
		'every case has an outcome on both paths');

	for my $path ('import', 'load')
	{
		my $counts = $node->safe_psql('postgres', qq{
SELECT string_agg(outcome || ' ' || n, ', ' ORDER BY n DESC, outcome)
  FROM (SELECT CASE WHEN state <> 'ok' THEN 'rejected ' || state
                    WHEN $works THEN 'works'
                    ELSE 'loaded but broken:'
                         || CASE WHEN 'NaN' IN (ppl, ppls[1], ppls[2], ppls[3]) THEN ' NaN perplexity'
                                 WHEN 'Infinity' IN (ppl, ppls[1], ppls[2], ppls[3])
                                      THEN ' infinite perplexity' ELSE '' END
                         || CASE WHEN use_state <> 'ok' THEN ' ERROR ' || use_state ELSE '' END
                    END AS outcome,
               count(*) AS n
          FROM fz_result WHERE path = '$path' GROUP BY 1) s});
		pass("$path outcomes: $counts");
	}

	check_none(q{r.state NOT IN ('ok', 'XX001', '54000')},
		'every rejection is XX001 data_corrupted or 54000 program_limit_exceeded');
	check_none(q{'53200' IN (r.state, r.use_state)}, 'no case runs out of memory (53200)');
	check_none("r.state = 'ok' AND NOT $works",
		'every accepted blob gives a model that works (perplexities, log-probabilities, evaluate, text)');
	check_none(q{c.expect = 'reject' AND r.state <> 'XX001'},
		'every blob that must be rejected is rejected with XX001');
	check_none("c.expect = 'accept' AND NOT (r.state = 'ok' AND $works)",
		'every consistent rewrite loads and works');
	check_none(q{EXISTS (SELECT 1 FROM fz_result o WHERE o.id = r.id AND o.path = 'load'
                      AND o.state IS DISTINCT FROM r.state) AND r.path = 'import'},
		'rnnlm_import and the loader agree on every blob');

	# An imported unmodified blob scores exactly like the model it came from.
	is($node->safe_psql('postgres', q{
SELECT count(*) FROM fz_case c JOIN fz_result r USING (id)
 WHERE c.kind = 'unmodified' AND r.path = 'import'
   AND r.ppl = rnnlm_perplexity(c.base, 'the printer jams')}),
		scalar(@base_names), 'an unmodified blob scores exactly like its original');
}

###########################################################################
# A valid model over rnnlm.max_memory is refused with 54000 on both paths.

if (server_up())
{
	my $m = $model{gru_char};
	my $big = reshape($m, E => 4, H => 300, L => 1);
	my $hex = unpack('H*', $big);
	$node->safe_psql('postgres', "SELECT rnnlm_import('fz_big', '\\x$hex')");
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET rnnlm.max_memory = '1MB';\n\\set VERBOSITY verbose\nSELECT rnnlm_import('fz_big2', '\\x$hex')");
	like($err, qr/ERROR:  54000:/, sprintf('importing a %.1f MB model under a 1 MB limit gives 54000',
		length($big) / 2**20));
	($ret, $out, $err) = $node->psql('postgres',
		"SET rnnlm.max_memory = '1MB';\n\\set VERBOSITY verbose\nSELECT rnnlm_perplexity('fz_big', 'abc')");
	like($err, qr/ERROR:  54000:/, 'loading it under a 1 MB limit gives 54000') or diag($err);
}

###########################################################################
# The server never crashed.

my $alive = eval { $canary->query_safe('SELECT pg_backend_pid()') } // 'gone';
is($alive, $canary_pid, 'the session opened at the start is still connected');
my (undef, $start_now) = $node->psql('postgres', 'SELECT pg_postmaster_start_time()');
is($start_now, $postmaster_start, 'the postmaster never restarted');
# a crash is logged with the statement that was running on the next line
my @log = split /\n/, slurp_file($node->logfile);
my @bad_lines = map { @log[ $_ .. ($_ < $#log ? $_ + 1 : $_) ] }
  grep { $log[$_] =~ /terminated by signal|server process .* was terminated|out of memory|PANIC|TRAP:/ }
  0 .. $#log;
is(scalar(@bad_lines), 0, 'the server log shows no crash and no out-of-memory error')
  or diag(join("\n", @bad_lines[ 0 .. ($#bad_lines < 19 ? $#bad_lines : 19) ]));
note sprintf('total %.1f s', time() - $t_start);

eval { $canary->quit };
$node->stop('fast', fail_ok => 1);
done_testing();
