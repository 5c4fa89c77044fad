# doc/security.md, the threat model, names every entry point of the
# extension: each function (by its signature, as regprocedure prints it),
# each table, view and sequence, and each rnnlm.* setting.  The list is read
# from the catalog (pg_depend on the extension, pg_settings), so a function
# added without its entry in the document fails here.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $doc_path = RnnlmTest::repo() . '/doc/security.md';
open(my $fh, '<', $doc_path) or die "cannot read $doc_path: $!";
my $doc = do { local $/; <$fh> };
close($fh);

my $node = RnnlmTest::new_node('security_doc');

# every member of the extension a role can call or read
my @functions = split /\n/, $node->safe_psql('postgres', q{
SELECT p.oid::regprocedure::text
  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'rnnlm')
 ORDER BY 1});
my @relations = split /\n/, $node->safe_psql('postgres', q{
SELECT c.oid::regclass::text
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'rnnlm')
 ORDER BY 1});
my @settings = split /\n/, $node->safe_psql('postgres', q{
SELECT rnnlm_runtime() IS NOT NULL;
SELECT name FROM pg_settings WHERE name LIKE 'rnnlm.%' ORDER BY 1});
shift @settings;    # the line of rnnlm_runtime(), which loads the library

cmp_ok(scalar(@functions), '>', 30, 'the catalog lists the extension\'s functions');
cmp_ok(scalar(@relations), '>=', 8, 'and its tables, views and sequences');
cmp_ok(scalar(@settings), '>=', 7, 'and its settings');

# A name is documented when it appears in backticks, the way the
# document's tables write them.
sub documented
{
	my ($name) = @_;
	return index($doc, "`$name`") >= 0;
}

for my $f (@functions)
{
	ok(documented($f), "doc/security.md names the function $f");
}
for my $r (@relations)
{
	my $qualified = $r =~ /\./ ? $r : "rnnlm.$r";
	ok(documented($qualified), "doc/security.md names the relation $qualified");
}
for my $s (@settings)
{
	ok(documented($s), "doc/security.md names the setting $s");
}

# Every test the document points to exists in the repository.
my %cited;
$cited{$1} = 1 while $doc =~ m{`((?:test/t|sql|test/core)/[A-Za-z0-9_./]+)`}g;
cmp_ok(scalar(keys %cited), '>=', 5, 'the document points to the tests that cover it');
for my $path (sort keys %cited)
{
	ok(-e RnnlmTest::repo() . "/$path", "the test $path that it cites exists");
}

$node->stop;
done_testing();
