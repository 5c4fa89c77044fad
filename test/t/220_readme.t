# The README's SQL examples, run as written: every fenced sql block of
# README.md, in order, each in its own psql session in one fresh database,
# as a role that is not a superuser (the extension is created by the
# superuser, as the README's install section says).  A block fails on any
# ERROR.  A block that needs what this cluster lacks (other servers,
# pg_cron, pgvector) carries a marker line before its fence,
# <!-- readme-test: skip: why -->, which this test reports as a skip with its
# reason; a marker must name a test file that exists, which runs the same
# thing where it can.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $readme_path = RnnlmTest::repo() . '/README.md';
open(my $fh, '<:encoding(UTF-8)', $readme_path) or die "cannot read $readme_path: $!";
my @lines = <$fh>;
close($fh);

# the sql blocks: [line number, text, skip reason or undef]
my @blocks;
for (my $i = 0; $i < @lines; $i++)
{
	next unless $lines[$i] =~ /^(\s*)```sql\s*$/;
	my ($indent, $start) = ($1, $i + 1);
	my $reason;
	$reason = $1 if $i > 0 && $lines[ $i - 1 ] =~ /<!-- readme-test: skip: (.*?) -->/;
	my $text = '';
	for ($i++; $i < @lines && $lines[$i] !~ /^\s*```\s*$/; $i++)
	{
		(my $l = $lines[$i]) =~ s/^\Q$indent\E//;
		$text .= $l;
	}
	push @blocks, [ $start, $text, $reason ];
}
cmp_ok(scalar(@blocks), '>=', 5, 'the README has sql blocks');
my @run = grep { !defined $_->[2] } @blocks;
cmp_ok(scalar(@run), '>=', 1, 'and some of them run here');

my $node = RnnlmTest::new_node('readme');
$node->safe_psql('postgres', q{
CREATE ROLE newcomer LOGIN;
CREATE DATABASE readme OWNER newcomer;});

for my $b (@blocks)
{
	my ($line, $sql, $reason) = @$b;
	if (defined $reason)
	{
		my @named = $reason =~ m{(test/t/\w+\.t)};
		ok(@named && !grep({ !-e RnnlmTest::repo() . "/$_" } @named),
			"README.md line $line: its marker names a test that exists (@named)");
		SKIP: { skip("README.md line $line: $reason", 1); }
		next;
	}
	# the extension is created by a superuser (see "Installing for real")
	if ($sql =~ /^CREATE EXTENSION rnnlm;\n/m)
	{
		$node->safe_psql('readme', 'CREATE EXTENSION IF NOT EXISTS rnnlm');
		$sql =~ s/^CREATE EXTENSION rnnlm;\n//m;
	}
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('readme'),
		  '-U', 'newcomer', '-f', '-' ],
		'<', \$sql, '>', \$out, '2>', \$err, IPC::Run::timeout(900));
	ok($ok && $err !~ /ERROR/, "README.md line $line: the sql block runs without an error")
	  or diag("stderr:\n$err");
}

# what the quickstart made, and that its classification is right
is($node->safe_psql('readme', q{SELECT string_agg(name, ',' ORDER BY name) FROM rnnlm.model}),
	'hw,net,tickets,tickets_2027,tickets_bpe,tickets_glove', 'the quickstart stores its models');
is($node->safe_psql('readme', q{
SELECT string_agg(id || ' ' || rnnlm_classify(ARRAY['hw', 'net'], body), ', ' ORDER BY id) FROM new_tickets}),
	'1 hw, 2 net', 'and its classifiers put each new ticket in its queue');
note($node->safe_psql('readme', q{
SELECT id, s.model, round(s.probability::numeric, 4)
  FROM new_tickets, rnnlm_classify_scores(ARRAY['hw', 'net'], body) s ORDER BY 1, 2}));

$node->stop;
done_testing();
