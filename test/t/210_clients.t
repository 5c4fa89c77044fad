# The README's psycopg2 example (section "Clients"), run as written against a
# fresh database by a role with LOGIN and no other privilege: options passed
# with Json, the jsonb summary read as a dict, a job queued until its
# transaction commits, rnnlm_wait under autocommit, a list as text[], and an
# error's SQLSTATE.  The script's output must be what the README says it
# prints.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $python = '/usr/bin/python3';
my ($out, $err) = ('', '');
IPC::Run::run([ $python, '-c', 'import psycopg2' ], '>', \$out, '2>', \$err)
  or plan skip_all => "$python cannot import psycopg2: install python3-psycopg2 (test/deps.sh does)";

# the first python block of the README's section "Clients"
my $readme_path = RnnlmTest::repo() . '/README.md';
open(my $fh, '<', $readme_path) or die "cannot read $readme_path: $!";
my $readme = do { local $/; <$fh> };
close($fh);
my ($section) = $readme =~ /^## Clients\n(.*?)^## /ms;
ok(defined $section, 'the README has a section "Clients"');
my ($script) = ($section // '') =~ /^```python\n(.*?)^```$/ms;
ok(defined $script && length $script, 'with a python block');
my ($said) = ($section // '') =~ /^It prints (.*?)\. /ms;
my @expected = defined $said ? ($said =~ /`([^`]+)`/g) : ();
cmp_ok(scalar(@expected), '>=', 4, 'and the lines it says the script prints');

my $node = RnnlmTest::new_node('clients');
$node->safe_psql('postgres', q{
CREATE ROLE app LOGIN;
CREATE DATABASE appdb OWNER app;});
$node->safe_psql('appdb', 'CREATE EXTENSION rnnlm');

local $ENV{PGHOST} = $node->host;
local $ENV{PGPORT} = $node->port;
local $ENV{PGDATABASE} = 'appdb';
local $ENV{PGUSER} = 'app';
($out, $err) = ('', '');
my $ok = IPC::Run::run([ $python, '-c', $script ], '>', \$out, '2>', \$err,
	IPC::Run::timeout(600));
ok($ok, 'the script runs without an error') or diag($err);
is_deeply([ split /\n/, $out ], \@expected, 'and prints what the README says');
is($node->safe_psql('appdb', q{SELECT string_agg(name || ' ' || owner::text, ', ' ORDER BY name) FROM rnnlm.model}),
	'notes app, notes_job app', 'both models belong to the role that connected');

$node->stop;
done_testing();
