# Fuzzing the model file reader: tens of thousands of mutated model files
# (doc/format.md) go through rnnlm_import and through the loader (a mutated blob
# written into a model row with UPDATE, then rnnlm_perplexity).  Every one must
# either be rejected with an ERROR (XX001 data_corrupted, or 54000
# program_limit_exceeded for an allocation over rnnlm.max_memory) or give a
# model that works: perplexities, token log-probabilities, rnnlm_evaluate and
# generated text (see $ALLOW_INF_PERPLEXITY below).  The server must never
# crash and never run out of memory.
#
# Version 2 (what rnnlm writes): the mutations start from the real blobs of
# tiny models of each cell type and tokenizer (word, char, bpe), and of models
# whose text rules have options (split_on_punctuation and filters, NFKC).
# Version 1 (what rnnlm 0.1 wrote, still read): from the fixture
# test/fixtures/model_v1_char_lstm.hex and from version 1 blobs built here out
# of the same models (word and char, the text rules of 0.1).
#
# Families of both versions: bit flips with and without the CRC recomputed,
# truncations, extensions, absurd header values, broken vocabularies,
# non-finite weights, and consistent rewrites that must load.  Of version 2:
# a wrong section count; sections missing, repeated, reordered (after CONF:
# must load; CONF not first: refused); unknown tags that start with anything
# but a lower-case letter (refused) and unknown lower-case ones (skipped,
# even repeated: must load); section lengths that do not agree with the
# payloads; absurd text rules; broken bpe merges and byte tokens.  Where
# doc/format.md decides a case, its expected outcome is worked out here from
# the document (the section walk, the text rules and the bpe merges are
# checked in Perl); where the document leaves a case open, any outcome that
# neither crashes nor breaks the model is allowed.
#
# The cases are generated here from a fixed seed (RNNLM_FUZZ_SEED overrides
# it), copied into a table, and run by one PL/pgSQL function in batches, each
# case inside exception blocks, with the outcome recorded in a table and
# checked from here.
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
# The model file (doc/format.md): parse and build both versions.
#
# A parsed model is a hash: layout (1 or 2), the CONF fields (cell tok flags V
# E H L P), the text rules (rules norm tflags filters uver; those of 0.1 for
# version 1), vocab (the entries), merges (bpe: [a, b] pairs), params (the
# float bytes), and where things are in the blob it came from: params_at,
# entry_at (each vocabulary entry's length), head_end (the end of the header,
# for version 2 the start of the vocabulary's payload), vocab_end (the end of
# the vocabulary, and of the merges for bpe), words (the offsets of the u32
# fields of the header, and for version 2 of the section heads, CONF, TEXT's
# numbers and string lengths, and the merge count and first merge), sec
# (version 2: tag => {at, payload_at, len}) and order (the tags, in file
# order).

use constant MAGIC => "RNNLM\0\r\n";
my @GATES = (1, 4, 3);    # rnn, lstm, gru
my @CONF = qw(cell tok flags V E H L);
my %RULES_01 = (rules => 0, norm => 0, tflags => 0, filters => '', uver => '');
my %KNOWN = map { $_ => 1 } qw(CONF TEXT VOCB PARM);
use constant BYTE0 => 2;    # bpe: the token of byte b is BYTE0 + b

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
sub u64_at   { my ($lo, $hi) = unpack('V2', substr($_[0], $_[1], 8)); return $lo + $hi * 2**32; }
# a u64: a number, or [lo, hi] for values a double cannot hold
sub u64      { my ($v) = @_; return ref $v ? pack('V2', @$v) : pack('V2', $v % 2**32, int($v / 2**32)); }

sub parse_blob
{
	my ($data) = @_;
	return unpack('V', substr($data, 8, 4)) == 1 ? parse_v1($data) : parse_v2($data);
}

# The vocabulary entries from $pos on: [entries], [where each starts], the end.
sub parse_vocab
{
	my ($data, $pos, $V) = @_;
	my (@vocab, @at);
	for (1 .. $V)
	{
		my $n = unpack('V', substr($data, $pos, 4));
		push @at, $pos;
		push @vocab, substr($data, $pos + 4, $n);
		$pos += 4 + $n;
	}
	return (\@vocab, \@at, $pos);
}

sub parse_v1
{
	my ($data) = @_;
	my %m = (layout => 1, %RULES_01);
	my @h = unpack('V9', substr($data, 8, 36));
	@m{@CONF} = @h[ 1 .. 7 ];
	$m{P} = u64_at($data, 44);
	@m{qw(vocab entry_at vocab_end)} = parse_vocab($data, 52, $m{V});
	$m{head_end} = 52;
	$m{params_at} = $m{vocab_end};
	$m{params} = substr($data, $m{params_at}, length($data) - 4 - $m{params_at});
	$m{words} = [ map { 8 + 4 * $_ } 0 .. 10 ];
	return \%m;
}

sub parse_v2
{
	my ($data) = @_;
	my %m = (layout => 2);
	my $nsec = unpack('V', substr($data, 12, 4));
	my $pos = 16;
	my @words = (8, 12);
	for (1 .. $nsec)
	{
		my $tag = substr($data, $pos, 4);
		my $len = u64_at($data, $pos + 4);
		$m{sec}{$tag} = { at => $pos, payload_at => $pos + 12, len => $len };
		push @{ $m{order} }, $tag;
		push @words, $pos, $pos + 4, $pos + 8;
		$pos += 12 + $len;
	}
	my $conf = $m{sec}{CONF}{payload_at};
	@m{@CONF} = unpack('V7', substr($data, $conf, 28));
	$m{P} = u64_at($data, $conf + 28);
	push @words, map { $conf + 4 * $_ } 0 .. 8;
	my $t = $m{sec}{TEXT}{payload_at};
	@m{qw(rules norm tflags)} = unpack('V3', substr($data, $t, 12));
	$pos = $t + 12;
	for my $f (qw(filters uver))
	{
		my $n = unpack('V', substr($data, $pos, 4));
		push @words, $pos;
		$m{$f} = substr($data, $pos + 4, $n);
		$pos += 4 + $n;
	}
	push @words, $t, $t + 4, $t + 8;
	@m{qw(vocab entry_at vocab_end)} = parse_vocab($data, $m{sec}{VOCB}{payload_at}, $m{V});
	$m{head_end} = $m{sec}{VOCB}{payload_at};
	if (my $g = $m{sec}{MERG})
	{
		my @ids = unpack('V*', substr($data, $g->{payload_at} + 4, $g->{len} - 4));
		$m{merges} = [ map { [ @ids[ 2 * $_, 2 * $_ + 1 ] ] } 0 .. $#ids / 2 ];
		$m{merges} = [] if !@ids;
		$m{vocab_end} = $g->{payload_at} + $g->{len} if $g->{at} > $m{head_end};
		push @words, map { $g->{payload_at} + 4 * $_ } 0 .. 2;
	}
	$m{params_at} = $m{sec}{PARM}{payload_at};
	$m{params} = substr($data, $m{params_at}, $m{sec}{PARM}{len});
	$m{words} = [ sort { $a <=> $b } @words ];
	return \%m;
}

sub p_u64
{
	my ($h) = @_;
	return defined $h->{plo} ? pack('V2', $h->{plo}, $h->{phi}) : u64($h->{P});
}

sub conf_payload { my ($h) = @_; return pack('V7', @$h{@CONF}) . p_u64($h); }

sub text_payload
{
	my ($h) = @_;
	return pack('V3', @$h{qw(rules norm tflags)}) . pack('V/a*', $h->{filters}) . pack('V/a*', $h->{uver});
}
sub vocab_payload { return join('', map { pack('V/a*', $_) } @{ $_[0]{vocab} }); }

sub merges_payload
{
	my ($h) = @_;
	return pack('V', $h->{mcount} // scalar @{ $h->{merges} }) . pack('V*', map { @$_ } @{ $h->{merges} });
}

# The sections a model is written as, in the writer's order: [tag, payload]
# (a third element, when there, is the length written instead of the
# payload's).
sub sections_of
{
	my ($h) = @_;
	return (
		[ CONF => conf_payload($h) ], [ TEXT => text_payload($h) ], [ VOCB => vocab_payload($h) ],
		($h->{merges} ? [ MERG => merges_payload($h) ] : ()), [ PARM => $h->{params} ]);
}

sub section { my ($tag, $payload, $len) = @_; return $tag . u64($len // length $payload) . $payload; }

# A version 2 blob from a parsed model, with fields overridden: any field
# of the model, and magic, version, nsec (the section count written), edit
# (a function from the list of sections to the one written).  P (or plo and
# phi) is written as given, so it may disagree with the shape.
sub build_v2
{
	my ($m, %o) = @_;
	my %h = (%$m, %o);
	my @s = sections_of(\%h);
	@s = $o{edit}->(@s) if $o{edit};
	my $data = ($o{magic} // MAGIC) . pack('V2', $o{version} // 2, $o{nsec} // scalar @s);
	$data .= section(@$_) for @s;
	return with_crc($data);
}

# A version 1 blob from a parsed model (its text rules are not written:
# version 1 has those of 0.1), with fields overridden as for build_v2, and
# reserved.
sub build_v1
{
	my ($m, %o) = @_;
	my %h = (%$m, %o);
	my $data = ($o{magic} // MAGIC) . pack('V9', $o{version} // 1, @h{@CONF}, $o{reserved} // 0) . p_u64(\%h);
	$data .= vocab_payload(\%h) . $h{params};
	return with_crc($data);
}

sub build_blob
{
	my ($m, %o) = @_;
	return (($o{layout} // $m->{layout}) == 1 ? build_v1($m, %o) : build_v2($m, %o));
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
# What doc/format.md says of a case, where the mutation leaves it to one
# part of the file: 1 valid, 0 invalid, undef where the document leaves it
# open.  expect() turns that into the outcome required.

sub expect { my ($ok) = @_; return !defined $ok ? 'any' : $ok ? 'accept' : 'reject'; }

# Well-formed UTF-8 (NUL allowed here; callers decide about NUL).
sub utf8_ok
{
	return $_[0] =~ /\A(?:[\x00-\x7F]|[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]
	  |[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}
	  |[\xF1-\xF3][\x80-\xBF]{3}|\xF4[\x80-\x8F][\x80-\xBF]{2})*\z/x ? 1 : 0;
}

# The section walk of a version 2 blob: the count at most 64, every section
# inside the blob, CONF first (36 bytes), no known section twice, no unknown
# tag but those that start with a lower-case letter, the required sections
# there, nothing after the last.
sub walk_ok
{
	my ($data) = @_;
	my $end = length($data) - 4;
	return 0 if $end < 16;
	my $n = unpack('V', substr($data, 12, 4));
	return 0 if $n > 64;
	my ($pos, $bpe, %seen) = (16, 0);
	for my $i (0 .. $n - 1)
	{
		return 0 if $end - $pos < 12;
		my $tag = substr($data, $pos, 4);
		my $len = u64_at($data, $pos + 4);
		$pos += 12;
		return 0 if $len > $end - $pos;
		return 0 if $i == 0 && ($tag ne 'CONF' || $len != 36);
		$bpe = unpack('V', substr($data, $pos + 4, 4)) == 2 if $i == 0;
		if ($KNOWN{$tag} || ($bpe && $tag eq 'MERG'))
		{
			return 0 if $seen{$tag}++;
		}
		elsif ($tag !~ /^[a-z]/)
		{
			return 0;
		}
		$pos += $len;
	}
	return 0 if $pos != $end;
	return 0 if grep { !$seen{$_} } keys %KNOWN;
	return 0 if $bpe && !$seen{MERG};
	return 1;
}

# A TEXT payload, for a model of tokenizer $tok: valid, invalid, or open
# (filters without the flag that says they are given).  The Unicode version
# is not checked on reading.
sub text_ok
{
	my ($p, $tok) = @_;
	return 0 if length $p < 20;
	my ($rules, $norm, $fl) = unpack('V3', $p);
	return 0 if $rules > 1 || $norm > 2 || ($fl & ~3);
	my ($pos, $open, @str) = (12, 0);
	for my $cap (255, 31)
	{
		return 0 if length($p) - $pos < 4;
		my $k = unpack('V', substr($p, $pos, 4));
		return 0 if $k > $cap || length($p) - $pos - 4 < $k;
		my $s = substr($p, $pos + 4, $k);
		return 0 if !utf8_ok($s) || $s =~ /\0/;
		push @str, $s;
		$pos += 4 + $k;
	}
	return 0 if $pos != length $p;
	return 0 if $rules == 0 && ($norm || $fl || $tok == 2);
	$open = 1 if !($fl & 2) && length $str[0];
	return $open ? undef : 1;
}

# A vocabulary (and, for bpe, its merges), the lengths written right: the
# entries 1 to 1024 bytes, <eod> and <unk> first, no two equal; word and
# char: UTF-8 without NUL; bpe: the 256 bytes at 2 to 257, at most V
# merges, each two tokens other than <eod> and <unk> that spell a token
# other than a byte, <eod> or <unk>, no pair twice.
sub vocab_ok
{
	my ($tok, $vocab, $merges) = @_;
	my $V = @$vocab;
	return 0 if $V < 3;
	my %id;
	for my $i (0 .. $V - 1)
	{
		my $t = $vocab->[$i];
		return 0 if length($t) < 1 || length($t) > 1024 || exists $id{$t};
		return 0 if $tok != 2 && (!utf8_ok($t) || $t =~ /\0/);
		$id{$t} = $i;
	}
	return 0 unless $vocab->[0] eq '<eod>' && $vocab->[1] eq '<unk>';
	return 1 if $tok != 2;
	return 0 if $V < BYTE0 + 256 || @$merges > $V;
	for my $b (0 .. 255)
	{
		return 0 if $vocab->[ BYTE0 + $b ] ne chr($b);
	}
	my %pair;
	for my $p (@$merges)
	{
		my ($x, $y) = @$p;
		return 0 if $x < BYTE0 || $y < BYTE0 || $x >= $V || $y >= $V;
		my $into = $id{ $vocab->[$x] . $vocab->[$y] };
		return 0 if !defined $into || $into < BYTE0 + 256;
		return 0 if $pair{"$x $y"}++;
	}
	return 1;
}

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

# [name, options, training query]
my $CORPUS = 'SELECT body FROM corpus';
my @bases = (
	[ lstm_word => '{"cell": "lstm", "tokenizer": "word", "embedding_dim": 4, "hidden_size": 8, "num_layers": 2}' ],
	[ gru_char  => '{"cell": "gru", "tokenizer": "char", "embedding_dim": 6, "hidden_size": 8, "num_layers": 1}' ],
	[ rnn_char  => '{"cell": "rnn", "tokenizer": "char", "embedding_dim": 8, "hidden_size": 8, "num_layers": 2, "lowercase": true}' ],
	[ gru_word  => '{"cell": "gru", "tokenizer": "word", "embedding_dim": 5, "hidden_size": 8, "num_layers": 1, "lowercase": false}' ],
	[ lstm_char => '{"cell": "lstm", "tokenizer": "char", "embedding_dim": 4, "hidden_size": 8, "num_layers": 1}' ],
	[ rnn_word  => '{"cell": "rnn", "tokenizer": "word", "embedding_dim": 4, "hidden_size": 8, "num_layers": 1}' ],
	[ lstm_bpe  => '{"cell": "lstm", "tokenizer": "bpe", "max_vocab": 300, "embedding_dim": 2, "hidden_size": 3, "num_layers": 1}' ],
	[ gru_bpe   => '{"cell": "gru", "tokenizer": "bpe", "max_vocab": 280, "embedding_dim": 2, "hidden_size": 2, "num_layers": 2, "lowercase": true}' ],
	[ rnn_bpe   => '{"cell": "rnn", "tokenizer": "bpe", "max_vocab": 270, "embedding_dim": 2, "hidden_size": 3, "num_layers": 1}' ],
	[ word_punct => '{"cell": "gru", "tokenizer": "word", "split_on_punctuation": true, "filters": "-.", "embedding_dim": 4, "hidden_size": 6, "num_layers": 1}',
	  q{SELECT body || ' - re-print.ok' FROM corpus} ],
	[ char_nfkc => '{"cell": "lstm", "tokenizer": "char", "normalize": "nfkc", "embedding_dim": 4, "hidden_size": 6, "num_layers": 1}',
	  q{SELECT body || ' ﬁle ①' FROM corpus} ],
);
my (%blob, %model);
for my $base (@bases)
{
	my ($name, $opts, $query) = @$base;
	$opts =~ s/}$/, "epochs": 1, "batch_size": 8, "seq_len": 16}/;
	$node->safe_psql('postgres', qq{
SET client_min_messages = warning;
SELECT rnnlm_train('$name', \$q\$} . ($query // $CORPUS) . qq{\$q\$, '$opts');});
	$blob{$name} = pack('H*',
		$node->safe_psql('postgres', "SELECT encode(rnnlm_export('$name'), 'hex')"));
	$model{$name} = parse_blob($blob{$name});
}
my @v2_names = map { $_->[0] } @bases;

# Version 1 bases: the fixture, and version 1 blobs of two of the models.
{
	my $hex = slurp_file(RnnlmTest::repo() . '/test/fixtures/model_v1_char_lstm.hex');
	$hex =~ s/\s+//g;
	$blob{v1_fixture} = pack('H*', $hex);
	$model{v1_fixture} = parse_blob($blob{v1_fixture});
	for my $name (qw(gru_word rnn_char))
	{
		$blob{"v1_$name"} = build_v1($model{$name});
		$model{"v1_$name"} = parse_blob($blob{"v1_$name"});
	}
}
my @v1_names = qw(v1_fixture v1_gru_word v1_rnn_char);
my @base_names = (@v2_names, @v1_names);

is(join(' ', map { $model{$_}{layout} } @base_names), join(' ', (2) x @v2_names, (1) x @v1_names),
	'the models are written in version 2, the fixture and the blobs built from them are version 1');
is(join(' ', map { build_blob($model{$_}) eq $blob{$_} ? 'same' : 'differs' } @base_names),
	join(' ', ('same') x @base_names),
	'every base blob parses and rebuilds byte for byte, CRC included');
is(join(' ', map { sprintf('%08x', crc32_perl(substr($blob{$_}, 0, -4))) } @base_names),
	join(' ', map { sprintf('%08x', unpack('V', substr($blob{$_}, -4))) } @base_names),
	'the pure-Perl CRC-32 agrees with the stored checksums');
is(join(' ', map { join(',', @{ $model{$_}{order} }) . ':' . (walk_ok($blob{$_}) // 'open') } @v2_names),
	join(' ', map { ($model{$_}{tok} == 2 ? 'CONF,TEXT,VOCB,MERG,PARM' : 'CONF,TEXT,VOCB,PARM') . ':1' } @v2_names),
	'every version 2 base has the sections CONF, TEXT, VOCB, MERG for bpe, PARM, in that order');
is(join(' ', map {
			my $m = $model{$_};
			(text_ok(text_payload($m), $m->{tok}) // 'open') . vocab_ok($m->{tok}, $m->{vocab}, $m->{merges})
		} @base_names),
	join(' ', ('11') x @base_names), 'the checks of the text rules and the vocabulary pass every base');
is(join(' ', map { "$model{$_}{rules}/$model{$_}{norm}/$model{$_}{tflags}/$model{$_}{filters}" } qw(lstm_word word_punct char_nfkc)),
	'1/0/0/ 1/0/3/-. 1/2/0/', 'the text rules of the bases vary');
cmp_ok(scalar @{ $model{lstm_bpe}{merges} }, '>=', 10, 'the bpe models have merges');

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

# A byte position: a third each in the header (for version 2 the header,
# CONF and TEXT), the vocabulary (and the merges) and anywhere.
sub biased_pos
{
	my ($m, $len) = @_;
	my $r = rnd(3);
	return rnd($m->{head_end}) if $r == 0;
	return $m->{head_end} + rnd($m->{vocab_end} - $m->{head_end}) if $r == 1;
	return rnd($len);
}

# Random counts per base of the random families (bit flips, bytes, junk);
# the bpe models, whose blobs are the largest, get 60 % of them.
my %RANDOM = (flip1 => 400, flipN => 150, byte => 100, junk => 60, nocrc => 40);

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
	my $pstart = $m->{params_at};
	my @vocab = @{ $m->{vocab} };
	my $mid = int($V / 2);
	my $v2 = $m->{layout} == 2;
	my $bpe = $m->{tok} == 2;
	my $ver = $v2 ? 'v2' : 'v1';
	my %random = map { $_ => $bpe ? int(0.6 * $RANDOM{$_}) : $RANDOM{$_} } keys %RANDOM;

	add("$ver:unmodified", '', 'accept', $data);

	# bit flips and byte changes, the CRC recomputed: anything may come of them
	for (1 .. $random{flip1})
	{
		my $pos = biased_pos($m, $c);
		my $bit = rnd(8);
		add("$ver:flip1-crc", "byte $pos bit $bit", 'any', fix_crc(flip_bit($data, $pos * 8 + $bit)));
	}
	for (1 .. $random{flipN})
	{
		my ($x, $k, @at) = ($data, 2 + rnd(7));
		for (1 .. $k)
		{
			my $pos = biased_pos($m, $c);
			push @at, $pos;
			$x = flip_bit($x, $pos * 8 + rnd(8));
		}
		add("$ver:flipN-crc", "$k flips at @at", 'any', fix_crc($x));
	}
	for (1 .. $random{byte})
	{
		my $pos = biased_pos($m, $c);
		my $v = (0, 0xFF, 0x7F, 0x80, 0x01, rnd(256))[ rnd(6) ];
		my $x = $data;
		substr($x, $pos, 1) = chr $v;
		add("$ver:byte-crc", "byte $pos = $v", 'any', fix_crc($x));
	}
	# special words over every header field (for version 2: the section
	# heads, CONF, TEXT's numbers and string lengths, the merge count and the
	# first merge) and the first vocabulary lengths
	for my $off (@{ $m->{words} }, @{ $m->{entry_at} }[ 0 .. 3 ])
	{
		for my $v (0, 1, 3, 1024, 1025, 16385, 2_000_001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
		{
			add("$ver:word-crc", "u32 at $off = $v", 'any', fix_crc(set_u32($data, $off, $v)));
		}
	}
	# random spans of junk, the CRC recomputed
	for (1 .. $random{junk})
	{
		my $pos = biased_pos($m, $c);
		my $k = 1 + rnd(64);
		$k = $c - $pos if $pos + $k > $c;
		my $x = $data;
		substr($x, $pos, $k) = junk($k);
		add("$ver:junk-crc", "$k bytes at $pos", 'any', fix_crc($x));
	}

	# without the CRC recomputed, the checksum (or the magic or version check
	# before it) catches every change
	for (1 .. $random{nocrc})
	{
		my $k = rnd(3) ? 1 : 2 + rnd(7);
		my $x = $data;
		$x = flip_bit($x, rnd($n * 8)) for 1 .. $k;
		next if $x eq $data;
		add("$ver:flips-nocrc", "$k flips", 'reject', $x);
	}

	# truncations: at every position up to a few bytes into the parameters
	# (for a long vocabulary, every position of its first 240
	# bytes, around every section head, and a sample) with a new CRC over
	# what is left, and a sample without one
	{
		my $every = $pstart + 10 < 240 ? $pstart + 10 : 240;
		my %cut = map { $_ => 1 } 0 .. $every - 1;
		if ($pstart + 10 > 240)
		{
			$cut{$_} = 1 for map { $_->{at} - 2 .. $_->{at} + 14 } values %{ $m->{sec} };
			$cut{ 240 + rnd($pstart - 230) } = 1 for 1 .. 50;
			$cut{$_} = 1 for $pstart - 2 .. $pstart + 9;
		}
		$cut{ $pstart + 10 + rnd($c - $pstart - 20) } = 1 for 1 .. 40;
		$cut{$_} = 1 for $c - 5 .. $c - 1;
		add("$ver:truncate-crc", "to $_ bytes + CRC", 'reject', with_crc(substr($data, 0, $_)))
		  for sort { $a <=> $b } grep { $_ < $c } keys %cut;
		my @cut_plain = $v2
		  ? (0, 1, 4, 7, 8, 11, 12, 15, 16, 19, 20, 27, 28, 63, 64, 75, 76, map { $_->{at} + 12 } values %{ $m->{sec} })
		  : (0, 1, 4, 7, 8, 11, 12, 40, 51, 52, 53, 55, 56, 57, 60);
		push @cut_plain, $m->{head_end} + rnd($pstart - $m->{head_end}) for 1 .. 10;
		push @cut_plain, $pstart + rnd($c - $pstart) for 1 .. 10;
		push @cut_plain, $n - 5 .. $n - 1;
		add("$ver:truncate", "to $_ bytes", 'reject', substr($data, 0, $_)) for sort { $a <=> $b } @cut_plain;
	}

	# extensions
	add("$ver:append", "$_ bytes after the CRC", 'reject', $data . junk($_))
	  for 1, 2, 3, 4, 5, 8, 64, 4096;
	add("$ver:append-crc", "$_ bytes before a new CRC", 'reject', with_crc(substr($data, 0, $c) . junk($_)))
	  for 1, 3, 4, 8, 12, 400;
	add("$ver:append-crc", 'one zero float more', 'reject', with_crc(substr($data, 0, $c) . "\0" x 4));
	add("$ver:append-crc", 'the CRC of the whole blob after it', 'reject', with_crc($data));
	{
		my $x = $data;
		substr($x, $m->{vocab_end}, 0) = junk(8);
		add("$ver:insert-crc", '8 bytes between vocabulary and parameters', 'reject', fix_crc($x));
	}

	# absurd header values (the rest unchanged)
	for my $i (0 .. 7)
	{
		my $magic = MAGIC;
		substr($magic, $i, 1) = chr(ord(substr($magic, $i, 1)) ^ 0x20);
		add("$ver:header-crc", "magic byte $i", 'reject', build_blob($m, magic => $magic));
	}
	add("$ver:header-crc", 'magic zero', 'reject', build_blob($m, magic => "\0" x 8));
	# a version 2 blob read as version 1 has its section count as the cell;
	# a version 1 blob read as version 2 has its tokenizer as the first tag
	my %absurd = (
		version  => [ $v2 ? 1 : 2, 0, 3, 0x100, 0x01000000, 0xFFFFFFFF ],
		cell     => [ 3, 4, 0xFF, 0x80000000, 0xFFFFFFFF ],
		tok      => [ (grep { $_ != $m->{tok} && ($bpe || $_ == 2) } 0 .. 2), 3, 0x100, 0xFFFFFFFF ],
		flags    => [ 2, 3, 0x100, 0x80000000, 0xFFFFFFFF ],
		V        => [ 0, 1, 2, $V - 1, $V + 1, 2_000_000, 2_000_001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF ],
		E        => [ 0, $m->{E} + 1, 16384, 16385, 0x80000000, 0xFFFFFFFF ],
		H        => [ 0, $m->{H} - 1 || 2, 16384, 16385, 0x80000000, 0xFFFFFFFF ],
		L        => [ 0, $m->{L} + 1, 16, 17, 2**31, 0xFFFFFFFF ],
		($v2 ? () : (reserved => [ 1, 0x100, 0x80000000, 0xFFFFFFFF ])));
	for my $f (sort keys %absurd)
	{
		for my $v (@{ $absurd{$f} })
		{
			add("$ver:header-crc", "$f = $v", 'reject', build_blob($m, $f => $v));
			# with P made to agree, for the shape fields (and no more data)
			next unless $f =~ /^[VEHL]$/ && $v > 0;
			my %s = (%$m, $f => $v);
			next if $s{L} > 1000;
			add("$ver:header-crc", "$f = $v, P agreeing", 'reject',
				build_blob($m, $f => $v, P => nparams_for(@s{qw(cell V E H L)})));
		}
	}
	for my $p ([ 0, 0 ], [ ($P - 1), 0 ], [ ($P + 1), 0 ], [ $P, 1 ], [ 0xFFFFFFFF, 0 ],
		[ 0xFFFFFFFF, 0xFFFFFFFF ], [ 0, 0x80000000 ], [ $P * 4, 0 ], [ $P, 0x40000000 ])
	{
		add("$ver:nparams-crc", "P = $p->[1] << 32 | $p->[0]", 'reject',
			build_blob($m, plo => $p->[0], phi => $p->[1]));
	}
	# the biggest shape the limits allow, P agreeing: the data cannot hold it
	add("$ver:nparams-crc", 'maximal shape, P agreeing', 'reject',
		build_blob($m, E => 16384, H => 16384, L => 16,
			P => nparams_for($m->{cell}, $V, 16384, 16384, 16)));
	add("$ver:nparams-crc", 'V = 2,000,000, E = H = 1, P agreeing', 'reject',
		build_blob($m, V => 2_000_000, E => 1, H => 1, L => 1,
			P => nparams_for($m->{cell}, 2_000_000, 1, 1, 1)));

	# huge vocabulary counts that the bytes left could almost hold
	{
		my $rest = $c - $m->{head_end};
		for my $v (int($rest / 5), int($rest / 5) + 1, int($rest / 9), $V * 2)
		{
			add("$ver:vocab-count-crc", "V = $v", 'reject', build_blob($m, V => $v));
			add("$ver:vocab-count-crc", "V = $v, P agreeing", 'reject',
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
			add("$ver:vocab-length-crc", "entry $i length $v", 'reject', fix_crc(set_u32($data, $at, $v)));
		}
		for my $v ($len - 1, $len + 1, 1024)
		{
			next if $v < 1;
			add("$ver:vocab-length-crc", "entry $i length $v (misaligned)", 'any', fix_crc(set_u32($data, $at, $v)));
		}
	}
	# vocabulary entries: contents, the lengths consistent; the outcome is
	# what doc/format.md says of the vocabulary (and the merges) that results
	my $with_vocab = sub {
		my ($kind, $detail, @v) = @_;
		add("$ver:$kind", $detail, expect(vocab_ok($m->{tok}, \@v, $m->{merges})), build_blob($m, vocab => \@v));
	};
	my $with_entry = sub {
		my ($kind, $detail, $i, $t) = @_;
		return if $vocab[$i] eq $t;
		my @v = @vocab;
		$v[$i] = $t;
		$with_vocab->($kind, $detail, @v);
	};
	my @some = $bpe ? (0, BYTE0, BYTE0 + 0x41, BYTE0 + 255, BYTE0 + 256, $mid, $V - 1) : (0, 2, $mid, $V - 1);
	for my $i (@some)
	{
		$with_entry->('vocab-utf8-crc', "entry $i invalid UTF-8 #$_", $i, $bad_utf8[$_]) for 0 .. $#bad_utf8;
		$with_entry->('vocab-empty-crc', "entry $i empty", $i, '');
		$with_entry->('vocab-long-crc', "entry $i 1025 bytes", $i, 'x' x 1025);
	}
	$with_entry->('vocab-dup-crc', 'entry 2 = <eod>', 2, '<eod>');
	$with_entry->('vocab-dup-crc', 'entry 3 = <unk>', 3, '<unk>');
	$with_entry->('vocab-dup-crc', 'last = entry 2', $V - 1, $vocab[2]);
	$with_entry->('vocab-dup-crc', 'mid = mid + 1', $mid, $vocab[ $mid + 1 ]);
	for my $s ([ 0, 1 ], [ 0, 2 ], [ 1, $V - 1 ])
	{
		my @v = @vocab;
		@v[@$s] = @v[ reverse @$s ];
		$with_vocab->('vocab-special-crc', "entries @$s swapped", @v);
	}
	$with_entry->('vocab-special-crc', "entry 0 = $_", 0, $_) for '<EOD>', '<eod> ', "<eod>\0", '<eo', 'xeod>';
	$with_entry->('vocab-special-crc', "entry 1 = $_", 1, $_) for '<UNK>', '<unk', '<unk>>';

	# non-finite weights
	for my $k (0, 1, (map { rnd($P) } 1 .. 8), $P - $V, $P - 1)
	{
		for my $f (@nan_inf)
		{
			my $x = $data;
			substr($x, $pstart + 4 * $k, 4) = pack('V', $f->[1]);
			add("$ver:weight-nonfinite-crc", "parameter $k = $f->[0]", 'reject', fix_crc($x));
		}
	}

	# consistent rewrites, which must load and work
	add("$ver:valid-rewrite", 'all weights zero', 'accept', build_blob($m, params => "\0" x (4 * $P)));
	{
		my $x = $data;
		substr($x, $pstart + 4 * rnd($P), 4) = pack('V', $_->[1]) for
		  [ denormal => 0x00000001 ], [ '-0' => 0x80000000 ], [ FLT_MIN => 0x00800000 ];
		add("$ver:valid-rewrite", 'denormal, -0 and FLT_MIN weights', 'accept', fix_crc($x));
	}
	add("$ver:valid-rewrite", 'flags toggled (lowercase)', 'accept', build_blob($m, flags => $m->{flags} ^ 1));
	add("$ver:valid-rewrite", 'tokenizer switched', 'accept', build_blob($m, tok => $m->{tok} ^ 1)) unless $bpe;
	add("$ver:valid-rewrite", "cell $_, weights to match", 'accept', reshape($m, cell => $_))
	  for grep { $_ != $m->{cell} } 0 .. 2;
	add("$ver:valid-rewrite", 'E = H = L = 1', 'accept', reshape($m, E => 1, H => 1, L => 1));
	add("$ver:valid-rewrite", 'L = 16, H = 2', 'accept', reshape($m, L => 16, H => 2));
	add("$ver:valid-rewrite", 'E = 1, H = 16, L = 3', 'accept', reshape($m, E => 1, H => 16, L => 3));
	add("$ver:valid-rewrite", 'one entry more', 'accept', reshape($m, vocab => [ @vocab, 'zz-new' ]));
	if (!$bpe)
	{
		add("$ver:valid-rewrite", 'one entry fewer', 'accept', reshape($m, vocab => [ @vocab[ 0 .. $V - 2 ] ]));
		add("$ver:valid-rewrite", 'V = 3', 'accept', reshape($m, vocab => [ @vocab[ 0 .. 2 ] ]));
		$with_entry->('valid-rewrite', 'entry of 1024 bytes', $mid, "\xC3\xA9" x 512);
		$with_entry->('valid-rewrite', 'entry with U+1D11E', 2, "\xF0\x9D\x84\x9E");
		$with_entry->('valid-rewrite', 'entry with U+FFFD', $V - 1, "\xEF\xBF\xBD");
		$with_entry->('valid-rewrite', 'entry with spaces', $mid, ' a b ');

		# a token with a NUL byte (that generation would prefer): text in
		# PostgreSQL cannot hold NUL, so the format rejects it
		my @v = @vocab;
		$v[2] = "n\0l";
		my $params = $m->{params};
		substr($params, 4 * ($P - $V + 2), 4) = pack('f<', 40.0);
		add("$ver:nul-token", 'entry 2 = "n\0l", favoured', 'reject',
			build_blob($m, vocab => \@v, params => $params));
	}
	# extreme but finite weights
	{
		my $x = $data;
		substr($x, $pstart + 4 * ($P - 1), 4) = pack('V', 0x7F7FFFFF);
		add("$ver:valid-extreme-weights", 'last bias = FLT_MAX', 'accept', fix_crc($x));
		my $scaled = pack('f<*', map { $_ * 1e30 } unpack('f<*', $m->{params}));
		add("$ver:valid-extreme-weights", 'every weight times 1e30', 'accept', build_blob($m, params => $scaled));
		my $big = pack('f<*', map { $_ < 0 ? -3e38 : 3e38 } unpack('f<*', $m->{params}));
		add("$ver:valid-extreme-weights", 'every weight +-3e38', 'accept', build_blob($m, params => $big));
	}

	if (!$v2)
	{
		# the version 2 blob of the same model (what rnnlm_export writes now)
		add('v1:valid-rewrite', 'as version 2, rules of 0.1', 'accept', build_v2($m));
		next;
	}

	#######################################################################
	# Version 2 only: the sections.

	my @order = @{ $m->{order} };
	my $ns = scalar @order;
	my $edit = sub { my ($f) = @_; return build_v2($m, edit => $f); };

	add('v2:sec-count-crc', "count $_", 'reject', build_v2($m, nsec => $_))
	  for 0, 1, $ns - 1, $ns + 1, $ns + 2, 64, 65, 0x80000000, 0xFFFFFFFF;
	for my $i (0 .. $ns - 1)
	{
		add('v2:sec-missing-crc', "no $order[$i]", 'reject', $edit->(sub { splice(@_, $i, 1); @_ }));
		add('v2:sec-missing-crc', "no $order[$i], count unchanged", 'reject',
			build_v2($m, nsec => $ns, edit => sub { splice(@_, $i, 1); @_ }));
		add('v2:sec-repeat-crc', "$order[$i] twice in a row", 'reject', $edit->(sub { splice(@_, $i, 0, $_[$i]); @_ }));
		add('v2:sec-repeat-crc', "$order[$i] again at the end", 'reject', $edit->(sub { (@_, $_[$i]) }));
		add('v2:sec-repeat-crc', "$order[$i] again at the end, empty", 'reject',
			$edit->(sub { (@_, [ $_[$i][0], '' ]) }));
	}
	add('v2:sec-order-crc', 'CONF second', 'reject', $edit->(sub { @_[ 1, 0, 2 .. $#_ ] }));
	add('v2:sec-order-crc', 'CONF last', 'reject', $edit->(sub { @_[ 1 .. $#_, 0 ] }));
	add('v2:sec-order-crc', 'all reversed', 'reject', $edit->(sub { reverse @_ }));
	add('v2:sec-order-crc', 'PARM first', 'reject', $edit->(sub { @_[ $#_, 0 .. $#_ - 1 ] }));
	# after CONF, any order
	add('v2:valid-order', 'CONF, then the rest reversed', 'accept', $edit->(sub { ($_[0], reverse @_[ 1 .. $#_ ]) }));
	add('v2:valid-order', 'CONF, PARM, the rest', 'accept', $edit->(sub { @_[ 0, $#_, 1 .. $#_ - 1 ] }));
	add('v2:valid-order', 'TEXT last', 'accept', $edit->(sub { @_[ 0, 2 .. $#_, 1 ] }));
	add('v2:valid-order', 'VOCB, TEXT swapped', 'accept', $edit->(sub { @_[ 0, 2, 1, 3 .. $#_ ] }));
	add('v2:valid-order', 'MERG before VOCB', 'accept', $edit->(sub { @_[ 0, 1, 3, 2, 4 ] })) if $bpe;
	add('v2:valid-order', 'MERG right after CONF', 'accept', $edit->(sub { @_[ 0, 3, 1, 2, 4 ] })) if $bpe;

	# unknown tags: upper case must be understood, lower case may be skipped
	my @upper = ('XTRA', 'Xtra', 'ZZZZ', 'CONf', 'VOCb', 'Parm', 'TXET', 'BPE2', "A\0\0\0", ($bpe ? () : 'MERG'));
	my @lower = ('xtra', 'conf', 'merg', 'vocb', 'zZZZ', "a\0\0\0", 'parm');
	for my $k (0 .. $#upper)
	{
		my $t = $upper[$k];
		my $at = (1, 2, $ns - 1, $ns)[ $k % 4 ];
		my $pl = $k % 2 ? junk(8) : '';
		add('v2:sec-unknown-crc', "tag $t at $at", 'reject', $edit->(sub { splice(@_, $at, 0, [ $t, $pl ]); @_ }));
		add('v2:sec-unknown-crc', "tag $t before CONF", 'reject', $edit->(sub { ([ $t, $pl ], @_) })) if $k < 3;
	}
	# nor may one that starts with anything but a lower-case letter be skipped
	for my $t ("\0\0\0\0", '1abc', '_abc', ' abc', '@abc', '[abc', '`abc', '{abc', "\xC3\xA9ab", "\x7Fabc", "\xE1bcd")
	{
		add('v2:sec-unknown-crc', "tag \\x" . unpack('H*', $t), 'reject', $edit->(sub { splice(@_, 1, 0, [ $t, junk(4) ]); @_ }));
	}
	for my $k (0 .. $#lower)
	{
		my $t = $lower[$k];
		for my $at (1, 2, $ns - 1, $ns)
		{
			my $pl = ('', junk(1), junk(13), junk(300))[ ($k + $at) % 4 ];
			add('v2:valid-unknown-lower', "tag $t at $at, " . length($pl) . ' bytes', 'accept',
				$edit->(sub { splice(@_, $at, 0, [ $t, $pl ]); @_ }));
		}
		add('v2:sec-order-crc', "tag $t before CONF", 'reject', $edit->(sub { ([ $t, junk(4) ], @_) }));
		add('v2:valid-unknown-lower', "tag $t twice", 'accept',
			$edit->(sub { splice(@_, 1, 0, [ $t, junk(3) ], [ $t, '' ]); @_ }));
	}
	add('v2:valid-unknown-lower', 'one holding a copy of the sections', 'accept',
		$edit->(sub { (@_, [ 'copy', join('', map { section(@$_) } @_) ]) }));
	add('v2:valid-unknown-lower', 'one holding a CONF section head', 'accept',
		$edit->(sub { splice(@_, 1, 0, [ 'xtra', 'CONF' . u64(36) ]); @_ }));
	add('v2:valid-unknown-lower', 'a lower-case tag at every place', 'accept',
		$edit->(sub { ($_[0], map { ($_[$_], [ sprintf('x%03d', $_), junk(rnd(5)) ]) } 1 .. $#_) }));
	{
		my @extra = map { [ sprintf('z%03d', $_), junk($_ % 3) ] } 1 .. 64 - $ns;
		add('v2:valid-unknown-lower', '64 sections', 'accept', $edit->(sub { (@_, @extra) }));
		push @extra, [ 'zzzz', '' ];
		add('v2:sec-count-crc', '65 sections', 'reject', $edit->(sub { (@_, @extra) }));
	}

	# section lengths that disagree with the payloads: the walk decides
	for my $i (0 .. $ns - 1)
	{
		my ($tag, $len) = ($order[$i], $m->{sec}{ $order[$i] }{len});
		my $rest = $c - $m->{sec}{$tag}{payload_at};
		for my $l ($len - 1, $len + 1, $len - 4, $len + 4, $len + 12, 0, $len + 2**32, [ 0xFFFFFFFF, 0xFFFFFFFF ],
			[ 0, 0x80000000 ], $rest, $rest + 1)
		{
			next if !ref $l && ($l < 0 || $l == $len);
			my $x = $edit->(sub { $_[$i] = [ @{ $_[$i] }[ 0, 1 ], $l ]; @_ });
			add('v2:sec-length-crc', "$tag length " . (ref $l ? "0x$l->[1]:$l->[0]" : $l), expect(walk_ok($x)), $x);
		}
		add('v2:sec-length-crc', "$tag + 8 bytes, length agreeing", 'reject',
			$edit->(sub { $_[$i] = [ $_[$i][0], $_[$i][1] . junk(8) ]; @_ }));
		add('v2:sec-length-crc', "$tag - 4 bytes, length agreeing", 'reject',
			$edit->(sub { $_[$i] = [ $_[$i][0], substr($_[$i][1], 0, -4) ]; @_ }));
		my $x = $edit->(sub { $_[$i] = [ @{ $_[$i] }, $len ]; $_[$i][1] .= junk(8); @_ });
		add('v2:sec-length-crc', "$tag + 8 bytes, length not agreeing", expect(walk_ok($x)), $x);
	}

	#######################################################################
	# Version 2 only: the text rules.

	# the outcome is what doc/format.md says of the TEXT payload; the family
	# is valid-text where it must load, text-crc otherwise
	my $text_raw = sub {
		my ($detail, $p) = @_;
		my $e = expect(text_ok($p, $m->{tok}));
		add($e eq 'accept' ? 'v2:valid-text' : 'v2:text-crc', $detail, $e,
			$edit->(sub { map { $_->[0] eq 'TEXT' ? [ TEXT => $p ] : $_ } @_ }));
	};
	my $text = sub {
		my ($detail, %o) = @_;
		$text_raw->($detail, text_payload({ %$m, %o }));
	};
	$text->("rules $_", rules => $_) for 2, 3, 0x80000000, 0xFFFFFFFF;
	$text->("normalize $_", norm => $_) for 3, 4, 0xFFFFFFFF;
	$text->("text flags $_", tflags => $_) for 4, 5, 0x100, 0x80000000, 0xFFFFFFFF;
	$text->("rules 0, normalize $_", rules => 0, %RULES_01, norm => $_) for 1, 2;
	$text->("rules 0, text flags $_", rules => 0, %RULES_01, tflags => $_) for 1, 2, 3;
	$text->('filters of 256 bytes', tflags => 2, filters => 'a' x 256);
	$text->("filters invalid UTF-8 #$_", tflags => 2, filters => $bad_utf8[$_]) for 0, 2, 6, 7;
	$text->('filters with NUL', tflags => 2, filters => "a\0b");
	$text->('filters not given, yet there', tflags => $m->{tflags} & 1, filters => '-');
	$text->('Unicode version of 32 bytes', uver => '1' x 32);
	$text->("Unicode version invalid UTF-8 #$_", uver => $bad_utf8[$_]) for 1, 4;
	$text->('Unicode version with NUL', uver => "15\0");
	$text->('Unicode version empty', uver => '');
	$text->('Unicode version of 31 bytes', uver => '9' x 31);
	$text->('rules 0, the Unicode version kept', %RULES_01, uver => $m->{uver});
	$text->('rules 0, filters there', %RULES_01, filters => '-');
	$text->('rules 0', %RULES_01);
	$text->("normalize $_", norm => $_) for grep { $_ != $m->{norm} } 0 .. 2;
	$text->('split_on_punctuation toggled', tflags => $m->{tflags} ^ 1);
	$text->('filters "" given', tflags => $m->{tflags} | 2, filters => '');
	$text->('filters of 255 bytes', tflags => $m->{tflags} | 2, filters => ',' x 255);
	$text->('filters of three code points', tflags => 3, filters => "\xE2\x82\xAC\xC3\xA9\xF0\x9D\x84\x9E");
	$text->('filters of white space', tflags => 2, filters => " \t\n");
	$text->('filters dropped', tflags => $m->{tflags} & 1, filters => '') if $m->{tflags} & 2;
	{
		my $p = text_payload($m);
		my $f = length $m->{filters};
		my $uat = 16 + $f;    # the Unicode version's length
		for my $v (0xFFFFFFFF, 0x80000000, 256, length $p, $f + 1, ($f ? $f - 1 : ()))
		{
			$text_raw->("filters length $v", set_u32($p, 12, $v));
		}
		for my $v (0xFFFFFFFF, 32, 31, length($m->{uver}) + 1, length($m->{uver}) - 1, 0)
		{
			next if $v == length $m->{uver};
			$text_raw->("Unicode version length $v", set_u32($p, $uat, $v));
		}
		$text_raw->("$_ bytes more", $p . "\0" x $_) for 1, 4, 8;
		$text_raw->("cut to $_ bytes", substr($p, 0, $_)) for 0, 4, 12, 16, 19, $uat, $uat + 3, length($p) - 1;
	}

	next unless $bpe;

	#######################################################################
	# Version 2, bpe only: the merges and the byte tokens.

	my @merges = @{ $m->{merges} };
	my $M = @merges;
	my $with_merges = sub {
		my ($kind, $detail, @g) = @_;
		add("v2:$kind", $detail, expect(vocab_ok(2, \@vocab, \@g)), build_v2($m, merges => \@g));
	};
	# the count disagreeing with the pairs
	add('v2:merg-count-crc', "count $_", 'reject', build_v2($m, mcount => $_))
	  for 0, $M - 1, $M + 1, 2 * $M, $V, $V + 1, 0x80000000, 0xFFFFFFFF;
	for my $k (0, 1, 3, 4 + 8 * $M - 1, 4 + 8 * $M - 4, 4 + 8 * $M - 7)
	{
		add('v2:merg-count-crc', "payload cut to $k bytes", 'reject',
			$edit->(sub { map { $_->[0] eq 'MERG' ? [ MERG => substr($_->[1], 0, $k) ] : $_ } @_ }));
	}
	add('v2:merg-count-crc', 'a merge and a half more', 'reject',
		$edit->(sub { map { $_->[0] eq 'MERG' ? [ MERG => $_->[1] . pack('V3', BYTE0, BYTE0, BYTE0) ] : $_ } @_ }));
	# ids out of range, the special tokens, pairs that spell nothing
	for my $r (0, int($M / 2), $M - 1)
	{
		for my $side (0, 1)
		{
			for my $id (0, 1, $V, $V + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, BYTE0 + ord('Q'), $V - 1, BYTE0 + 255)
			{
				my @g = map { [@$_] } @merges;
				$g[$r][$side] = $id;
				$with_merges->('merg-ids-crc', "merge $r " . ($side ? 'b' : 'a') . " = $id", @g);
			}
		}
		my @g = map { [@$_] } @merges;
		$g[$r] = [ reverse @{ $g[$r] } ];
		$with_merges->('merg-ids-crc', "merge $r swapped", @g);
	}
	{
		my %spelled = map { $_ => 1 } @vocab;
		my ($x) = grep { !$spelled{ chr($_->[0]) . chr($_->[1]) } } map { [ 0x51, $_ ] } 0x51 .. 0x5A;
		$with_merges->('merg-ids-crc', 'a pair of bytes that spells nothing', @merges, [ BYTE0 + $x->[0], BYTE0 + $x->[1] ]);
		$with_merges->('merg-ids-crc', 'a pair of bytes that spells nothing, first', [ BYTE0 + $x->[0], BYTE0 + $x->[1] ], @merges);
	}
	$with_merges->('merg-repeat-crc', "merge $_ again at the end", @merges, $merges[$_]) for 0, $M - 1;
	$with_merges->('merg-repeat-crc', 'merge 0 twice in a row', $merges[0], @merges);
	$with_merges->('merg-repeat-crc', 'every merge twice', @merges, @merges);
	# consistent: the merges need only spell tokens
	$with_merges->('valid-merges', 'no merges');
	$with_merges->('valid-merges', 'the last merge dropped', @merges[ 0 .. $M - 2 ]);
	$with_merges->('valid-merges', 'the first merge dropped', @merges[ 1 .. $M - 1 ]);
	$with_merges->('valid-merges', 'the merges reversed', reverse @merges);
	$with_merges->('valid-merges', 'the merges rotated', @merges[ 1 .. $M - 1, 0 ]);
	# tokens added with reshape: a merge that would spell <eod>, bytes that
	# are not UTF-8, NUL bytes
	my $reshape_bpe = sub {
		my ($kind, $detail, $v, $g, %o) = @_;
		add("v2:$kind", $detail, expect(vocab_ok(2, $v, $g)), reshape($m, vocab => $v, merges => $g, %o));
	};
	$reshape_bpe->('merg-ids-crc', 'a merge that spells <eod>', [ @vocab, '<eo', 'd>' ], [ @merges, [ $V, $V + 1 ] ]);
	$reshape_bpe->('merg-ids-crc', 'a merge that spells <unk>', [ @vocab, '<u', 'nk>' ], [ @merges, [ $V, $V + 1 ] ]);
	$reshape_bpe->('valid-merges', '<eo and d> without their merge', [ @vocab, '<eo', 'd>' ], [@merges]);
	$reshape_bpe->('valid-merges', 'a token of bytes that are not UTF-8, merged',
		[ @vocab, "\xFF\xFE" ], [ @merges, [ BYTE0 + 255, BYTE0 + 254 ] ]);
	$reshape_bpe->('valid-merges', 'a token of two NUL bytes, merged', [ @vocab, "\0\0" ], [ @merges, [ BYTE0, BYTE0 ] ]);
	$reshape_bpe->('valid-merges', 'a token of 1024 bytes, merged',
		[ @vocab, 'z' x 512, 'z' x 1024 ], [ @merges, [ $V, $V ] ]);
	$reshape_bpe->('merg-ids-crc', 'a merge of 1025 bytes',
		[ @vocab, 'z' x 512, 'z' x 513 ], [ @merges, [ $V, $V + 1 ] ]);
	$reshape_bpe->('valid-merges', 'the bytes only', [ @vocab[ 0 .. BYTE0 + 255 ] ], []);
	$reshape_bpe->('bpe-bytes-crc', 'the bytes but the last', [ @vocab[ 0 .. BYTE0 + 254 ] ], []);
	$reshape_bpe->('bpe-bytes-crc', 'byte 0x80 missing',
		[ @vocab[ 0 .. BYTE0 + 0x7F, BYTE0 + 0x81 .. BYTE0 + 255 ], "\x80" ], []);
	# byte tokens altered (the vocabulary otherwise kept)
	for my $b (0, 0x20, 0x41, 0x80, 0xFF)
	{
		$with_entry->('bpe-bytes-crc', "byte $b = byte " . ($b ^ 1), BYTE0 + $b, chr($b ^ 1));
		$with_entry->('bpe-bytes-crc', "byte $b doubled", BYTE0 + $b, chr($b) x 2);
		$with_entry->('bpe-bytes-crc', "byte $b = a new token", BYTE0 + $b, "new\xFF");
	}
	for my $s ([ 0x41, 0x42 ], [ 0, 255 ], [ 0x7F, 0x80 ])
	{
		my @v = @vocab;
		@v[ map { BYTE0 + $_ } @$s ] = @v[ map { BYTE0 + $_ } reverse @$s ];
		$with_vocab->('bpe-bytes-crc', "bytes @$s swapped", @v);
	}
	# byte 0 (NUL) favoured in generation: generated text turns it into U+FFFD
	{
		my $params = $m->{params};
		substr($params, 4 * ($P - $V + BYTE0), 4) = pack('f<', 40.0);
		add('v2:valid-merges', 'byte 0 favoured', 'accept', build_v2($m, params => $params));
	}
	# a bpe model as another tokenizer, or as version 1
	add('v2:bpe-tok-crc', "as $_->[1], merges dropped", expect(vocab_ok($_->[0], \@vocab)),
		build_v2($m, tok => $_->[0], merges => undef)) for [ 0, 'word' ], [ 1, 'char' ];
	add('v2:bpe-tok-crc', 'as version 1', 'reject', build_v1($m));
	{
		my @v = @vocab[ 0, 1, BYTE0 + 256 .. $V - 1 ];
		add('v2:bpe-tok-crc', 'as word, without the byte tokens', expect(vocab_ok(0, \@v)),
			reshape($m, tok => 0, merges => undef, vocab => \@v));
	}
}
my $ncases = scalar @cases;
my (%by_kind, %by_ver);
$by_kind{ $_->[1] }++ for @cases;
$by_ver{ substr($_->[1], 0, 2) }++ for @cases;
note "$ncases cases (seed $SEED; version 1 $by_ver{v1}, version 2 $by_ver{v2}): "
  . join(', ', map { "$_ $by_kind{$_}" } sort keys %by_kind);
cmp_ok($ncases, '>=', 20_000, "at least 20,000 mutated blobs ($ncases)");
cmp_ok($by_ver{v1}, '>=', 3_000, "at least 3,000 of version 1 ($by_ver{v1})");

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
	  for my $ver ('v1', 'v2')
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
          FROM fz_result JOIN fz_case USING (id)
         WHERE path = '$path' AND kind LIKE '$ver:%' GROUP BY 1) s});
		pass("$path outcomes, version " . substr($ver, 1) . ": $counts");
	  }
	}

	# per family: what was required, and what came of it on the import path
	note('by family, required outcome: loaded / rejected' . "\n" . $node->safe_psql('postgres', q{
SELECT string_agg(kind || ' ' || expect || ': ' || loaded || ' / ' || rejected, E'\n' ORDER BY kind, expect)
  FROM (SELECT c.kind, c.expect, count(*) FILTER (WHERE r.state = 'ok') AS loaded,
               count(*) FILTER (WHERE r.state <> 'ok') AS rejected
          FROM fz_case c JOIN fz_result r USING (id) WHERE r.path = 'import'
         GROUP BY 1, 2) s}));
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
 WHERE c.kind = 'v2:unmodified' AND r.path = 'import'
   AND r.ppl = rnnlm_perplexity(c.base, 'the printer jams')}),
		scalar(@v2_names), 'an unmodified blob scores exactly like its original');
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
