# rnnlm_runtime() reports what this backend computes with, and it is right:
# the processor features it lists are those /proc/cpuinfo lists; the vector
# kernels are AVX2+FMA exactly when the processor has both; OpenBLAS runs
# kernels of this processor's generation, not an older core it falls back
# to for models it does not know.  When OpenBLAS does fall back (simulated
# with RNNLM_TEST_BLAS_PROBE_CORETYPE=Prescott, which makes the probe's
# OpenBLAS pick Prescott as it does on an unknown processor), rnnlm picks
# the core from the feature flags instead.  An older core forced by the
# user (OPENBLAS_CORETYPE=Prescott) is kept and reported.  Every variant
# scores like the native kernels: every backend of the matrix products in
# fp32 within 1e-5, in bf16 (where it runs) within 1%, int8 within 2%; the forced
# fallbacks (the portable vector kernels, a machine without oneDNN) too.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my %cpuinfo;
if (open(my $fh, '<', '/proc/cpuinfo'))
{
	while (<$fh>)
	{
		if (/^flags\s*:\s*(.*)$/) { $cpuinfo{$_} = 1 for split ' ', $1; last; }
	}
	close $fh;
}
plan skip_all => 'no flags line in /proc/cpuinfo (not an x86 Linux machine)' unless %cpuinfo;

my @names = qw(sse4_2 avx avx2 fma f16c avx512f avx512bw avx512dq avx512vl
  avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8);
delete local $ENV{OPENBLAS_CORETYPE};
my $node = RnnlmTest::new_node('runtime');

# The report of a fresh backend, as a hash of its scalar fields.
sub runtime
{
	my ($n) = @_;
	my %r;
	for my $line (split /\n/, $n->safe_psql('postgres', q{
		WITH rt AS (SELECT rnnlm_runtime() AS r)
		SELECT unnest(ARRAY[
		  'features=' || (SELECT coalesce(string_agg(f, ' ' ORDER BY f COLLATE "C"), '')
		                    FROM jsonb_array_elements_text(r->'cpu'->'features') f),
		  'vendor=' || (r->'cpu'->>'vendor'),
		  'core=' || (r->'blas'->>'core'),
		  'legacy_core=' || (r->'blas'->>'legacy_core'),
		  'library=' || (r->'blas'->>'library'),
		  'chosen_by=' || (r->'blas'->>'chosen_by'),
		  'instead_of=' || coalesce(r->'blas'->>'instead_of', ''),
		  'vector=' || (r->'kernels'->>'vector'),
		  'precision=' || (r->>'precision'),
		  'fp32_backend=' || (r->'products'->'fp32'->>'backend'),
		  'bf16_backend=' || coalesce(r->'products'->'bf16'->>'backend', ''),
		  'onednn_usable=' || (SELECT b->>'usable' FROM jsonb_array_elements(r->'backends') b
		                        WHERE b->>'name' = 'onednn')])
		FROM rt}))
	{
		my ($k, $v) = split /=/, $line, 2;
		$r{$k} = $v // '';
	}
	return \%r;
}

my $r = runtime($node);
diag("runtime: $_ = $r->{$_}") for sort keys %$r;
my $expected = join ' ', sort grep { $cpuinfo{$_} } @names;
is($r->{features}, $expected, 'the features reported are those /proc/cpuinfo lists');
my $avx2 = $cpuinfo{avx2} && $cpuinfo{fma};
my $avx512 = $avx2 && $cpuinfo{avx512f} && $cpuinfo{avx512bw} && $cpuinfo{avx512dq} && $cpuinfo{avx512vl};
my $best_vector = $avx512 ? ($cpuinfo{avx512_bf16} ? 'avx512bf16' : 'avx512') : $avx2 ? 'avx2+fma' : 'portable';
is($r->{vector}, $best_vector,
	"the vector kernels are the best set the processor's flags allow ($best_vector)");
my $hw_bf16 = $cpuinfo{avx512_bf16} || $cpuinfo{amx_bf16};
is($r->{fp32_backend}, 'openblas', 'fp32 products run on OpenBLAS');
is($r->{bf16_backend}, ($hw_bf16 && $r->{onednn_usable} eq 'true') ? 'onednn' : '',
	$hw_bf16 ? 'bf16 products run on oneDNN where it is usable on a processor with bf16'
	  : 'a processor without bf16 instructions has no bf16 products by default');
like($r->{library}, qr/openblas/, 'OpenBLAS is the BLAS library');
isnt($r->{core}, '', "OpenBLAS names the kernels it chose ($r->{core})");
is($r->{legacy_core}, 'false',
	"the BLAS kernels are not older than this processor ($r->{core}, chosen by $r->{chosen_by})");
like($r->{chosen_by}, qr/^(openblas|rnnlm)$/, 'the kernels are OpenBLAS\'s choice, or rnnlm\'s when it falls back');
is($r->{precision}, 'fp32', 'the precision is fp32');

# Scores of a small model, to compare across kernels.
$node->safe_psql('postgres', q{
CREATE TABLE rt_docs AS
  SELECT 'line ' || i || ' about printers, tickets and logs' AS body FROM generate_series(1, 200) i;
SELECT rnnlm_train('rt_m', 'SELECT body FROM rt_docs',
  '{"tokenizer": "char", "epochs": 1, "hidden_size": 64, "embedding_dim": 16}');
});
my $scores_sql = q{SELECT string_agg(rnnlm_perplexity('rt_m', body)::text, ' ' ORDER BY body)
                     FROM (SELECT body FROM rt_docs LIMIT 20) d};
my @native = split ' ', $node->safe_psql('postgres', $scores_sql);
my $blob = $node->safe_psql('postgres', q{SELECT encode(rnnlm_export('rt_m'), 'hex')});
$node->stop;

# The core the feature flags call for, when OpenBLAS falls back.
my $flags_core = ($cpuinfo{avx512f} && $cpuinfo{avx512bw} && $cpuinfo{avx512dq} && $cpuinfo{avx512vl})
  ? 'skylakex' : ($r->{vendor} eq 'AuthenticAMD' ? 'zen' : 'haswell');

# The worst relative difference of a list of perplexities from the native ones.
sub worst_of
{
	my @s = @_;
	my $worst = @s == @native ? 0 : 1;
	for my $i (0 .. $#native)
	{
		my $rel = abs($native[$i] - ($s[$i] // 0)) / $native[$i];
		$worst = $rel if $rel > $worst;
	}
	return $worst;
}

# Scores on another node started with the given environment; its report.
sub scores_with
{
	my ($name, %env) = @_;
	local @ENV{keys %env} = values %env;
	my $n = RnnlmTest::new_node($name);
	my $report = runtime($n);
	$n->safe_psql('postgres', "SELECT rnnlm_import('rt_m', decode('$blob', 'hex'))");
	$n->safe_psql('postgres', q{
CREATE TABLE rt_docs AS
  SELECT 'line ' || i || ' about printers, tickets and logs' AS body FROM generate_series(1, 200) i;});
	my @s = split ' ', $n->safe_psql('postgres', $scores_sql);
	$n->stop;
	return ($report, worst_of(@s), $n);
}

# OpenBLAS falls back to Prescott (as on a processor it does not know)
{
	my ($p, $worst) = scores_with('fallback', RNNLM_TEST_BLAS_PROBE_CORETYPE => 'Prescott');
	if ($avx2)
	{
		is($p->{chosen_by}, 'rnnlm', 'when OpenBLAS would fall back, rnnlm chooses the core');
		is($p->{instead_of}, 'Prescott', 'and reports what OpenBLAS would have used');
		is(lc $p->{core}, $flags_core, "from the feature flags ($p->{core})");
		is($p->{legacy_core}, 'false', 'so the kernels are not older than the processor');
	}
	else
	{
		is($p->{chosen_by}, 'openblas', 'without AVX2 and FMA there is no better core to choose');
	}
	cmp_ok($worst, '<', 1e-5, sprintf('the same perplexities (worst relative difference %.2g)', $worst));
}

# the user forces an older core: kept, and reported as older
{
	my ($p, $worst) = scores_with('prescott', OPENBLAS_CORETYPE => 'Prescott');
	is($p->{chosen_by}, 'user', 'OPENBLAS_CORETYPE set by the user is respected');
	is(lc $p->{core}, 'prescott', 'OPENBLAS_CORETYPE=Prescott gives the Prescott kernels');
	is($p->{legacy_core}, $avx2 ? 'true' : 'false',
		'which the report flags as older than the processor when it has AVX2 and FMA');
	cmp_ok($worst, '<', 1e-5,
		sprintf('the Prescott kernels give the same perplexities (worst relative difference %.2g)', $worst));
}

# Every backend, and every precision it runs here, against the native fp32
# scores: fp32 within 1e-5, bf16 within 1% of the perplexity (about 0.01
# nats per token; measured 0.003 on these models).
{
	my $n = RnnlmTest::new_node('backends');
	$n->safe_psql('postgres', "SELECT rnnlm_import('rt_m', decode('$blob', 'hex'))");
	$n->safe_psql('postgres', q{
CREATE TABLE rt_docs AS
  SELECT 'line ' || i || ' about printers, tickets and logs' AS body FROM generate_series(1, 200) i;});
	my $rt = runtime($n);
	for my $backend (qw(openblas onednn reference))
	{
		my $usable = $n->safe_psql('postgres', qq{
			SELECT b->>'usable' || ' ' || (b->>'bf16') FROM jsonb_array_elements(rnnlm_runtime()->'backends') b
			 WHERE b->>'name' = '$backend'});
		my ($loads, $bf16) = split ' ', $usable;
		SKIP:
		{
			skip "backend $backend is not usable here", 2 unless $loads eq 'true';
			my @s = split ' ', $n->safe_psql('postgres', "SET rnnlm.backend = '$backend'; $scores_sql");
			my $worst = worst_of(@s);
			cmp_ok($worst, '<', 1e-5, sprintf('backend %s, fp32: the native perplexities (worst relative difference %.2g)',
				$backend, $worst));
			skip "backend $backend has no bf16 products on this processor", 1 unless $bf16 eq 'true';
			@s = split ' ', $n->safe_psql('postgres', "SET rnnlm.backend = '$backend'; SET rnnlm.precision = 'bf16'; $scores_sql");
			$worst = worst_of(@s);
			ok($worst < 1e-2 && $worst > 0, sprintf('backend %s, bf16: within 1%% of the fp32 perplexities (worst relative difference %.2g)',
				$backend, $worst));
		}
	}
	# int8 runs on every processor: within 2% of the fp32 perplexities
	{
		my @s = split ' ', $n->safe_psql('postgres', "SET rnnlm.precision = 'int8'; $scores_sql");
		my $worst = worst_of(@s);
		ok($worst < 2e-2 && $worst > 0, sprintf('int8: within 2%% of the fp32 perplexities (worst relative difference %.2g)', $worst));
	}
	# bf16 where the processor lacks it: an error, and auto is fp32
	SKIP:
	{
		skip 'this processor has bf16 instructions', 2 if $hw_bf16;
		my ($ret, $out, $err) = $n->psql('postgres', "SET rnnlm.precision = 'bf16'; $scores_sql");
		like($err, qr/invalid value for parameter "rnnlm.precision": "bf16"\nDETAIL:  this processor has no bf16 instructions/,
			'SET rnnlm.precision = bf16 on a processor without it is refused at once, with the reason');
		my @s = split ' ', $n->safe_psql('postgres', "SET rnnlm.precision = 'auto'; $scores_sql");
		is(worst_of(@s), 0, 'and auto scores in fp32, exactly as by default');
	}
	$n->stop;
}

# forced fallbacks: the portable vector kernels; no oneDNN on the machine
{
	my ($p, $worst) = scores_with('portable', RNNLM_TEST_KERNELS => 'portable');
	is($p->{vector}, 'portable', 'RNNLM_TEST_KERNELS=portable runs the portable vector kernels');
	cmp_ok($worst, '<', 1e-5, sprintf('which give the native perplexities (worst relative difference %.2g)', $worst));
}
{
	local $ENV{RNNLM_TEST_NO_ONEDNN} = '1';
	my $n = RnnlmTest::new_node('no_onednn');
	my $p = runtime($n);
	is($p->{onednn_usable}, 'false', 'without oneDNN the report says it is not usable');
	is($p->{bf16_backend}, '', 'and there are no bf16 products');
	is($p->{fp32_backend}, 'openblas', 'fp32 runs on OpenBLAS as before');
	my ($ret, $out, $err) = $n->psql('postgres', "SET rnnlm.backend = 'onednn'; SELECT rnnlm_runtime()");
	like($err, qr/could not load oneDNN.*\n.*HINT:.*libdnnl2/s, 'asking for oneDNN then is an error naming the package');
	$n->safe_psql('postgres', "SELECT rnnlm_import('rt_m', decode('$blob', 'hex'))");
	$n->safe_psql('postgres', q{
CREATE TABLE rt_docs AS
  SELECT 'line ' || i || ' about printers, tickets and logs' AS body FROM generate_series(1, 200) i;});
	my $worst = worst_of(split ' ', $n->safe_psql('postgres', "SET rnnlm.precision = 'auto'; $scores_sql"));
	is($worst, 0, 'and scoring with precision auto is fp32 on OpenBLAS, exactly the native scores');
	$n->stop;
}

done_testing();
