# Helpers shared by the TAP tests in test/t/.
#
#   use RnnlmTest;
#   my $node = RnnlmTest::new_node('main');      # started, with the extension created
#   my $file = RnnlmTest::test_data('shakespeare.txt');   # kept in test/data
#   my $python = RnnlmTest::python();
#
# The environment comes from test/run.sh: initdb and postgres first on PATH from
# a PostgreSQL tree with the extension installed, RNNLM_DATA_DIR, RNNLM_PYTHON.
package RnnlmTest;

use strict;
use warnings;
use Exporter qw(import);
use PostgreSQL::Test::Cluster;

our @EXPORT_OK = qw(new_node data_file python repo);

# A new started node with the extension created in the database postgres.
# Extra lines for postgresql.conf may be passed as conf => "...".
sub new_node
{
	my ($name, %params) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', <<'CONF');
shared_buffers = 32MB
max_connections = 20
lc_messages = 'C'
CONF
	$node->append_conf('postgresql.conf', $params{conf}) if defined $params{conf};
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION rnnlm');
	return $node;
}

# The path of a corpus kept in the repository under test/data (see its README).
sub test_data
{
	my ($name) = @_;
	my $path = repo() . "/test/data/$name";
	die "test/data/$name is missing from the repository" unless -r $path;
	return $path;
}

# The path of a shared corpus under RNNLM_DATA_DIR (for benchmarks), or undef when it is not available.
sub data_file
{
	my ($name) = @_;
	my $dir = $ENV{RNNLM_DATA_DIR};
	return undef unless defined $dir && length $dir;
	my $path = "$dir/$name";
	return -r $path ? $path : undef;
}

# The Python interpreter that can import torch and numpy.
sub python
{
	return $ENV{RNNLM_PYTHON} || '/usr/bin/python3';
}

# The root of the repository the tests run from.
sub repo
{
	require Cwd;
	require File::Basename;
	return $ENV{RNNLM_REPO}
	  || Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../..');
}

1;
