#!/usr/bin/perl
# Runs the project's tests under TAP::Harness and counts their test points.
#
#   perl test/harness.pl [options] [TEST...]
#
# By default it runs the core unit-test binaries (test/core/rnnlm_core_test, and
# test/core/rnnlm_core_test_asan when it was built), executed directly, and every
# test/t/*.t through perl with test/perl and PostgreSQL's TAP modules on @INC.
# TEST (a path, relative to the repository root or absolute) runs only that;
# the TAP tests expect the environment that test/run.sh sets up.
#
# Options:
#   --no-defaults          run only the TESTs and extra sources given
#   --tap=NAME=FILE        add a file of raw TAP text as the test NAME
#   --regress=FILE         add the saved output of a pg_regress run, one test
#                          point per regression test, as the test "pg_regress";
#   --regress-status=N     its exit status, --regress-diffs=FILE its
#   --regress-log=FILE     regression.diffs and the server log, shown on failure
#   --jobs=N               test files run at once (default $RNNLM_JOBS or 1)
#   --timeout=S            limit for each test file (default $RNNLM_TEST_TIMEOUT or 600)
#
# After TAP::Harness's summary, the very last line is "N passed, M failed"
# (", K skipped" appended when some were): N counts passing test points, K the
# skipped ones (a file that skips entirely counts as one), M the failing ones, a
# file that died or broke its plan counting at least one. If RNNLM_SUMMARY_FILE
# is set, that line is written there too. Exits non-zero when anything failed.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname basename);
use FindBin;
use Getopt::Long qw(GetOptions);
use TAP::Harness;

my $repo = abs_path("$FindBin::RealBin/..");
my $self = abs_path(__FILE__);

if (@ARGV && $ARGV[0] eq '--emit-regress')
{
	shift @ARGV;
	exit emit_regress(@ARGV);
}

my (@taps, $regress, $regress_status, $regress_diffs, $regress_log, $no_defaults);
my $jobs    = $ENV{RNNLM_JOBS}         || 1;
my $timeout = $ENV{RNNLM_TEST_TIMEOUT} || 600;
GetOptions(
	'tap=s'            => \@taps,
	'regress=s'        => \$regress,
	'regress-status=i' => \$regress_status,
	'regress-diffs=s'  => \$regress_diffs,
	'regress-log=s'    => \$regress_log,
	'no-defaults'      => \$no_defaults,
	'jobs=i'           => \$jobs,
	'timeout=i'        => \$timeout)
  or die "usage: $0 [options] [TEST...]\n";

chdir $repo or die "cannot chdir to $repo: $!\n";
$ENV{TESTDIR} //= $repo;
$| = 1;

my @lib = ("$repo/test/perl", pg_perl_lib());

# Each test is [source, name]; %cmd maps a source to the command that runs it,
# %limited names the tests run under a time limit.
my (@tests, %cmd, %limited);
for my $tap (@taps)
{
	my ($name, $file) = $tap =~ /^([^=]+)=(.+)$/
	  or die "--tap wants NAME=FILE, not $tap\n";
	push @tests, [ "tap:$file", $name ];
	$cmd{"tap:$file"} = [ 'cat', $file ];
}
if (defined $regress)
{
	push @tests, [ 'regress:', 'pg_regress' ];
	$cmd{'regress:'} = [
		$^X, $self, '--emit-regress', $regress, $regress_status // 0,
		$regress_diffs // '', $regress_log // ''
	];
}
my @files = @ARGV;
unless ($no_defaults || @files)
{
	@files = grep { -x } map { "test/core/$_" } qw(rnnlm_core_test rnnlm_core_test_asan);
	print "note: test/core/rnnlm_core_test is not built\n"
	  unless -x 'test/core/rnnlm_core_test';
	push @files, sort glob('test/t/*.t');
}
for my $file (@files)
{
	my $path = $file =~ m{^/} ? $file : "$repo/$file";
	die "no such test: $file\n" unless -e $path;
	my $name = $path =~ s{^\Q$repo\E/}{}r;
	my @run = $path =~ /\.t$/ ? ($^X, (map { "-I$_" } @lib), $path) : ($path);
	push @tests, [ $path, $name ];
	$cmd{$path} = [ 'timeout', '-k', '10', $timeout, @run ];
	$limited{$name} = 1;
}
die "no tests to run\n" unless @tests;

my $harness = TAP::Harness->new(
	{
		verbosity => 0,
		failures  => 1,
		timer     => 1,
		jobs      => $jobs,
		exec      => sub { $cmd{ $_[1] } },
	});
my $aggregator = $harness->runtests(@tests);

my ($passed, $failed, $skipped, @broken) = (0, 0, 0);
for my $name ($aggregator->descriptions)
{
	for my $parser ($aggregator->parsers($name))
	{
		my $f  = scalar $parser->failed;
		my $sk = scalar $parser->skipped;
		$passed  += scalar($parser->passed) - $sk;
		$skipped += $sk + ($parser->skip_all ? 1 : 0);
		$failed  += $f;
		next unless $parser->has_problems;
		push @broken, $name;
		print "note: $name did not finish within $timeout seconds\n"
		  if $parser->exit == 124 && $limited{$name};
		next if $f;
		# Died, timed out or broke its plan: count what it did not run, at least one.
		my $planned = $parser->tests_planned // 0;
		my $missing = $planned - $parser->tests_run;
		$failed += $missing > 0 ? $missing : 1;
	}
}
show_logs(@broken);

my $summary = "$passed passed, $failed failed";
$summary .= ", $skipped skipped" if $skipped;
if ($ENV{RNNLM_SUMMARY_FILE})
{
	open my $fh, '>', $ENV{RNNLM_SUMMARY_FILE}
	  or die "cannot write $ENV{RNNLM_SUMMARY_FILE}: $!\n";
	print $fh "$summary\n";
	close $fh;
}
STDERR->flush;
print "$summary\n";
exit($failed || $aggregator->has_errors ? 1 : 0);

# The directory of PostgreSQL's TAP modules (PostgreSQL::Test::Cluster and friends).
sub pg_perl_lib
{
	my $pg_config = $ENV{PG_CONFIG} || '/usr/lib/postgresql/15/bin/pg_config';
	chomp(my $pgxs = `'$pg_config' --pgxs 2>/dev/null` // '');
	return $pgxs ? dirname(dirname($pgxs)) . '/test/perl'
	  : '/usr/lib/postgresql/15/lib/pgxs/src/test/perl';
}

# Print the end of the log that PostgreSQL::Test::Utils kept for each failed TAP test.
sub show_logs
{
	for my $name (@_)
	{
		next unless $name =~ /\.t$/;
		my $log = "$ENV{TESTDIR}/tmp_check/log/regress_log_" . basename($name, '.t');
		next unless -f $log;
		print "\n--- last lines of $log ---\n";
		print tail($log, 60);
	}
	return;
}

# The last N lines of a file.
sub tail
{
	my ($file, $n) = @_;
	open my $fh, '<', $file or return '';
	my @lines = <$fh>;
	splice @lines, 0, @lines - $n if @lines > $n;
	return join '', @lines;
}

# Print TAP for a saved pg_regress run: one test point per regression test.
sub emit_regress
{
	my ($output, $status, $diffs, $log) = @_;
	open my $fh, '<', $output or die "cannot read $output: $!\n";
	my @lines = <$fh>;
	my @results;
	for (@lines)
	{
		# PostgreSQL 15: "test name ... ok  12 ms", "     name ... FAILED" in a parallel group.
		if (/^\s*(?:test\s+)?(\S+)\s+\.\.\.\s+(ok|FAILED|failed \(ignored\))/)
		{
			push @results, [ $1, $2 eq 'ok' ? 'ok' : $2 eq 'FAILED' ? 'not ok' : 'ignored' ];
		}
		# PostgreSQL 16 and later: "ok 1  - name  12 ms", "not ok 2 - name".
		elsif (/^(not ok|ok)\s+\d+\s+[-+]\s+(\S+)/)
		{
			push @results, [ $2, $1 ];
		}
	}
	my $bad = grep { $_->[1] eq 'not ok' } @results;
	my $crashed = $status != 0 && !$bad;
	if (!@results && !$crashed)
	{
		print "1..0 # SKIP no pg_regress tests in the output\n";
		return 0;
	}
	print '1..', @results + ($crashed ? 1 : 0), "\n";
	my $i = 0;
	for (@results)
	{
		my ($name, $result) = @$_;
		$i++;
		if ($result eq 'ignored') { print "not ok $i - $name # TODO failure ignored by pg_regress\n"; }
		else { print "$result $i - $name\n"; }
	}
	if ($crashed)
	{
		$i++;
		print "not ok $i - pg_regress exited with status $status\n";
		print STDERR "# pg_regress output, last lines:\n", map { "# $_" } @lines[ -(@lines < 40 ? @lines : 40) .. -1 ];
	}
	if (($bad || $crashed) && $diffs && -s $diffs)
	{
		print STDERR "# $diffs:\n", map { "# $_" } do { open my $d, '<', $diffs; <$d> };
	}
	# The server log only tells more when a backend crashed.
	my $server_log = $log && -s $log ? tail($log, 40) : '';
	if ($server_log =~ /terminated by signal|was terminated|PANIC|TRAP:/)
	{
		print STDERR "# end of the server log $log:\n", map { "# $_\n" } split /\n/, $server_log;
	}
	return 0;
}
