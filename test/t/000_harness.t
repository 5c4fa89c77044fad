# The test setup itself: a cluster started from the relocatable PostgreSQL tree
# that test/run.sh builds finds the extension installed into that tree.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PostgreSQL::Test::Utils;
use Test::More;
use RnnlmTest;

my $node = RnnlmTest::new_node('harness');

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server answers');
is( $node->safe_psql(
		'postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'rnnlm'}),
	'0.3',
	'rnnlm 0.3, the default version, is installed');

my $sharedir = $node->safe_psql('postgres',
	q{SELECT setting FROM pg_config WHERE name = 'SHAREDIR'});
ok(-f "$sharedir/extension/rnnlm.control",
	"the server's share directory $sharedir holds rnnlm.control");

# the settings exist once the library is loaded (README, "Configuration")
my ($ret, $out, $err) = $node->psql('postgres', 'SHOW rnnlm.threads');
like($err, qr/unrecognized configuration parameter "rnnlm.threads"/,
	'before the library is loaded, rnnlm.threads is not known');
is($node->safe_psql('postgres', q{LOAD 'rnnlm';
SHOW rnnlm.threads;
SELECT count(*) >= 7 FROM pg_settings WHERE name LIKE 'rnnlm.%'}), "1
t",
	"after LOAD 'rnnlm' it is, with the others in pg_settings");

# make install puts only the extension there: none of rnnlm's own headers
my $includedir = $node->safe_psql('postgres',
	q{SELECT setting FROM pg_config WHERE name = 'INCLUDEDIR-SERVER'});
ok($includedir ne "" && !-e "$includedir/extension/rnnlm",
	"make install puts no header of rnnlm's into $includedir/extension");

$node->stop;
done_testing();
