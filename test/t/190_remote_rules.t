# The rules under which rnnlm opens a connection to the database behind a
# postgres_fdw foreign server (rnnlm_train_federated, rnnlm_publish), with
# contrib as the oracle.  A remote node trusts local connections of its
# superuser "postgres" and asks the role remote_pw for its password
# (scram-sha-256).  For every shape of the local role alice's access to the
# server -- USAGE on it or not; her own user mapping or PUBLIC's; no
# password, an empty one, a wrong one, a dummy one that the remote never
# asks for, the right one; password_required 'false' or not -- alice tries
# dblink_connect(server), a read of a postgres_fdw foreign table, and both
# rnnlm functions.  Whenever dblink or postgres_fdw refuses, both rnnlm
# functions refuse too, with dblink's SQLSTATE (42501 without USAGE, 2F003
# for the password rules, 08001 when the remote refuses the password);
# where both accept, rnnlm works.  PostgreSQL 15's dblink ignores
# password_required 'false', which postgres_fdw honours, and so rnnlm
# ignores it too (and says so).  Then, explicitly: a dummy password for the
# remote superuser over "trust" neither reads the remote's pg_authid (nor
# does a background job) nor overwrites its models; without USAGE a PUBLIC
# mapping serves no one, and no connection reaches the remote; an empty
# password is refused before connecting; no error message shows a
# password; another role is not served by alice's mapping; a superuser
# connects as before.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use lib "$ENV{RNNLM_REPO}/test/perl";
use RnnlmTest;

my $local = RnnlmTest::new_node('rlocal');
for my $ext ('postgres_fdw', 'dblink')
{
	plan skip_all => "$ext is not installed in this PostgreSQL"
	  unless $local->safe_psql('postgres',
		"SELECT count(*) FROM pg_available_extensions WHERE name = '$ext'");
}
my $remote = RnnlmTest::new_node('rremote', conf => "log_connections = on\n");

my $secret = 'right-secret-190';
my $wrong  = 'wrong-secret-190';
my $dummy  = 'dummy-secret-190';
my $tiny =
  q{{"tokenizer": "char", "num_layers": 1, "hidden_size": 8, "embedding_dim": 4, "epochs": 1, "batch_size": 4, "seq_len": 8, "validation_fraction": 0, "seed": 7}};

# the remote: a superuser "postgres" that local connections reach without a
# password, a role remote_pw that must give its password, some text, a model
$remote->safe_psql('postgres', qq{
DO \$\$BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'postgres') THEN
		CREATE ROLE postgres SUPERUSER LOGIN;
	END IF;
END\$\$;
SET password_encryption = 'scram-sha-256';
CREATE ROLE remote_pw LOGIN PASSWORD '$secret';
CREATE TABLE lines (id int PRIMARY KEY, line text);
INSERT INTO lines SELECT g, 'the quick brown fox jumps over the lazy dog ' || g FROM generate_series(1, 40) g;
GRANT SELECT ON lines TO remote_pw;
SELECT rnnlm_train('victim', 'SELECT line FROM lines', '$tiny');
});
open(my $hba, '>', $remote->data_dir . '/pg_hba.conf') or die "pg_hba.conf: $!";
print $hba <<'HBA';
local all remote_pw scram-sha-256
local all all trust
host all remote_pw 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
HBA
close($hba);
$remote->reload;

# Runs SQL on the remote as remote_pw, with a password or none; true if it worked.
sub remote_as_pw
{
	my ($password) = @_;
	local %ENV = %ENV;
	delete $ENV{PGPASSWORD};
	$ENV{PGPASSWORD} = $password if defined $password;
	my ($ret) = $remote->psql('postgres', 'SELECT 1',
		connstr => $remote->connstr('postgres') . ' user=remote_pw', extra_params => ['-w']);
	return $ret == 0;
}
ok(!remote_as_pw(undef), 'the remote asks remote_pw for a password');
ok(!remote_as_pw($wrong), 'and refuses a wrong one');
ok(remote_as_pw($secret), 'and takes the right one');

# the local side: alice and bob, a server "loop" to the remote, a foreign
# table on it that alice may read, and alice's own models
my ($rhost, $rport) = ($remote->host, $remote->port);
my $lsuper = $local->safe_psql('postgres', 'SELECT current_user');
$local->safe_psql('postgres', qq{
CREATE EXTENSION postgres_fdw;
CREATE EXTENSION dblink;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '$rhost', port '$rport', dbname 'postgres', extensions 'rnnlm');
CREATE FOREIGN TABLE ft_lines (id int, line text) SERVER loop OPTIONS (table_name 'lines');
GRANT SELECT ON ft_lines TO alice, bob;
});
for my $m ('alice_model', 'victim')
{
	$local->safe_psql('postgres',
		"SELECT rnnlm_train('$m', 'SELECT ''hello world '' || g FROM generate_series(1, 30) g', '$tiny')",
		connstr => $local->connstr('postgres') . ' user=alice');
}

# Runs SQL on the local node as a role; returns 'ok' or the SQLSTATE, and stderr.
sub run_as
{
	my ($role, $sql) = @_;
	my ($ret, $out, $err) = $local->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		connstr => $local->connstr('postgres') . " user=$role");
	return ('ok', $err) if $ret == 0;
	return ($err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : "failed: $err", $err);
}

# What alice (or another role) gets from contrib and from rnnlm, as a hash of
# results and a hash of stderr texts.
my $nfed = 0;
sub probe
{
	my ($role) = @_;
	my (%r, %e);
	($r{dblink}, $e{dblink}) =
	  run_as($role, q{SELECT dblink_connect('c', 'loop'); SELECT dblink_disconnect('c');});
	($r{fdw}, $e{fdw}) = run_as($role, 'SELECT count(*) FROM ft_lines');
	$nfed++;
	($r{train}, $e{train}) = run_as($role,
		"SELECT rnnlm_train_federated('fed_$nfed', ARRAY['loop']::name[], 'SELECT line FROM lines', '$tiny')");
	($r{publish}, $e{publish}) = run_as($role, q{SELECT rnnlm_publish('alice_model', 'loop')});
	return (\%r, \%e);
}

# Makes the one user mapping of server loop (alice's or PUBLIC's) and alice's USAGE.
sub set_shape
{
	my (%s) = @_;
	my @opts = ("user '$s{user}'");
	push @opts, "password '$s{password}'" if defined $s{password};
	push @opts, "password_required 'false'" if $s{pwreq_false};
	$local->safe_psql('postgres', sprintf(q{
DROP USER MAPPING IF EXISTS FOR alice SERVER loop;
DROP USER MAPPING IF EXISTS FOR PUBLIC SERVER loop;
CREATE USER MAPPING FOR %s SERVER loop OPTIONS (%s);
%s USAGE ON FOREIGN SERVER loop %s alice;
}, $s{mapping}, join(', ', @opts), $s{usage} ? ('GRANT', 'TO') : ('REVOKE', 'FROM')));
}

# the shapes of the password: [name, remote user, password]
my @passwords = (
	[ 'no password (remote_pw)',            'remote_pw', undef ],
	[ 'no password (trusted postgres)',     'postgres',  undef ],
	[ 'empty password (remote_pw)',         'remote_pw', '' ],
	[ 'empty password (trusted postgres)',  'postgres',  '' ],
	[ 'wrong password (remote_pw)',         'remote_pw', $wrong ],
	[ 'dummy password (trusted postgres)',  'postgres',  $dummy ],
	[ 'right password (remote_pw)',         'remote_pw', $secret ]);

my @rnnlm_errors;    # every stderr of an rnnlm function
my %measured;        # shape name => results
my $accepted = 0;
for my $usage (1, 0)
{
	for my $mapping ('alice', 'PUBLIC')
	{
		for my $pwreq_false (0, 1)
		{
			for my $pw (@passwords)
			{
				my ($pname, $user, $password) = @$pw;
				my $shape = sprintf('%s, %s mapping, %s%s', $usage ? 'USAGE' : 'no USAGE',
					$mapping eq 'PUBLIC' ? "PUBLIC's" : "alice's", $pname,
					$pwreq_false ? ", password_required 'false'" : '');
				set_shape(usage => $usage, mapping => $mapping, user => $user,
					password => $password, pwreq_false => $pwreq_false);
				my ($r, $e) = probe('alice');
				$measured{$shape} = $r;
				push @rnnlm_errors, $e->{train}, $e->{publish};
				note(sprintf('%-95s dblink %-6s postgres_fdw %-6s train %-6s publish %s',
						$shape, @$r{qw(dblink fdw train publish)}));
				if ($r->{dblink} ne 'ok' || $r->{fdw} ne 'ok')
				{
					my $want = $r->{dblink} ne 'ok' ? $r->{dblink} : $r->{fdw};
					is($r->{train}, $want, "$shape: contrib refuses, so does rnnlm_train_federated ($want)");
					is($r->{publish}, $want, "$shape: and rnnlm_publish ($want)");
				}
				else
				{
					$accepted++;
					is($r->{train}, 'ok', "$shape: contrib accepts, and rnnlm_train_federated works");
					is($r->{publish}, 'ok', "$shape: and rnnlm_publish works");
				}
				if (!$usage)
				{
					is($r->{train}, '42501', "$shape: refused for the missing USAGE (42501)");
				}
				elsif ($pname =~ /^(no|empty|dummy)/)
				{
					is($r->{train}, '2F003', "$shape: refused by the password rules (2F003)");
				}
				elsif ($pname =~ /^right/)
				{
					is($r->{train} . $r->{dblink} . $r->{fdw}, 'okokok',
						"$shape: dblink, postgres_fdw and rnnlm all work");
				}
			}
		}
	}
}
is($accepted, 4, 'contrib accepts alice only with USAGE and the right password (4 shapes)');

# what PostgreSQL 15's contrib does with password_required 'false'
my $pf = "USAGE, alice's mapping, dummy password (trusted postgres), password_required 'false'";
is($measured{$pf}{fdw}, 'ok',
	"measured: postgres_fdw honours password_required 'false' (a dummy password over trust reads)");
is($measured{$pf}{dblink}, '2F003',
	"measured: dblink ignores it, and refuses that mapping (2F003)");
is($measured{"USAGE, alice's mapping, no password (trusted postgres), password_required 'false'"}{dblink},
	'2F003', 'measured: and dblink refuses a mapping with no password despite it');

# rnnlm says why it ignores password_required 'false'
set_shape(usage => 1, mapping => 'alice', user => 'postgres', password => $dummy, pwreq_false => 1);
my ($r, $err) = run_as('alice', q{SELECT rnnlm_publish('alice_model', 'loop')});
note($err);
like($err, qr/2F003: password is required\nDETAIL:  Non-superuser cannot connect .*\nHINT:  rnnlm, like dblink, ignores the password_required 'false' of the user mapping of server "loop"/,
	"password_required 'false': the hint says that rnnlm ignores it");

# finding 1: a dummy password for the remote superuser, whom the remote trusts
set_shape(usage => 1, mapping => 'alice', user => 'postgres', password => $dummy);
my $models_before = $remote->safe_psql('postgres',
	q{SELECT string_agg(name || ' ' || version || ' ' || sha256 || ' ' || owner::text, ', ' ORDER BY name) FROM rnnlm.models});
my $versions_before = $remote->safe_psql('postgres', 'SELECT count(*) FROM rnnlm.model_versions');
($r, $err) = run_as('alice',
	"SELECT rnnlm_train_federated('stolen', ARRAY['loop']::name[], 'SELECT rolname::text FROM pg_authid', '$tiny')");
note($err);
is($r, '2F003', 'a dummy password over trust does not train on the remote pg_authid (2F003)');
like($err, qr/ERROR:  2F003: password is required\nDETAIL:  Non-superuser cannot connect if the server does not request a password\.\nHINT:  .*server "loop"/,
	'with postgres_fdw\'s message and detail, and a hint naming the server');
my $job = $local->safe_psql('postgres',
	"SELECT rnnlm_train_federated_async('stolen', ARRAY['loop']::name[], 'SELECT rolname::text FROM pg_authid', '$tiny')",
	connstr => $local->connstr('postgres') . ' user=alice');
($r, $err) = run_as('alice', "SELECT rnnlm_wait($job, '60 s')");
is($r, '2F003', 'nor does a background job of alice\'s (rnnlm_wait: 2F003)');
is($local->safe_psql('postgres', q{SELECT count(*) FROM rnnlm.models WHERE name = 'stolen'}), '0',
	'no model "stolen" is stored');
($r, $err) = run_as('alice', q{SELECT rnnlm_publish('victim', 'loop')});
is($r, '2F003', 'nor does it publish over the remote superuser\'s model (2F003)');
is($remote->safe_psql('postgres',
		q{SELECT string_agg(name || ' ' || version || ' ' || sha256 || ' ' || owner::text, ', ' ORDER BY name) FROM rnnlm.models}),
	$models_before, 'the remote\'s models are unchanged');
is($remote->safe_psql('postgres', 'SELECT count(*) FROM rnnlm.model_versions'), $versions_before,
	'and so are its versions');
($r, $err) = run_as('alice', q{SELECT dblink_connect('c', 'loop')});
is($r, '2F003', 'dblink refuses that mapping too');

# Runs an rnnlm function as alice; returns its result, its stderr and the
# connections the remote logged meanwhile.
sub connections_during
{
	my ($sql) = @_;
	my $offset = -s $remote->logfile;
	my ($res, $e) = run_as('alice', $sql);
	my $log = slurp_file($remote->logfile, $offset);
	return ($res, $e, scalar(() = $log =~ /connection received:/g));
}

# finding 2: no USAGE, a PUBLIC mapping (with the right password)
set_shape(usage => 0, mapping => 'PUBLIC', user => 'remote_pw', password => $secret);
for my $call ("rnnlm_train_federated('x', ARRAY['loop']::name[], 'SELECT line FROM lines', '$tiny')",
	"rnnlm_publish('alice_model', 'loop')")
{
	my ($name) = $call =~ /^(\w+)/;
	my ($res, $e, $n) = connections_during("SELECT $call");
	note($e);
	is($res, '42501', "without USAGE a PUBLIC mapping does not serve alice: $name (42501)");
	like($e, qr/permission denied for foreign server loop/, "$name: the error names the server");
	is($n, 0, "$name: no connection reached the remote");
}
set_shape(usage => 1, mapping => 'PUBLIC', user => 'remote_pw', password => $secret);
my ($res, $e, $n) = connections_during(q{SELECT rnnlm_publish('alice_model', 'loop')});
is("$res $n", 'ok 1', 'with USAGE it does, through one logged connection');

# finding 3: an empty password is refused before connecting
set_shape(usage => 1, mapping => 'alice', user => 'remote_pw', password => '');
($res, $e, $n) = connections_during(q{SELECT rnnlm_publish('alice_model', 'loop')});
note($e);
is("$res $n", '2F003 0', 'an empty password is refused (2F003) before any connection');
like($e, qr/DETAIL:  Non-superusers must provide a password in the user mapping\.\nHINT:  .*server "loop"/,
	'with postgres_fdw\'s detail and a hint naming the server');

# a wrong password: the remote's refusal, without the password
set_shape(usage => 1, mapping => 'alice', user => 'remote_pw', password => $wrong);
($res, $e) = run_as('alice', q{SELECT rnnlm_publish('alice_model', 'loop')});
note($e);
is($res, '08001', 'a wrong password: the remote refuses the connection (08001)');
like($e, qr/could not connect to server "loop"\nDETAIL:  .*password authentication failed for user "remote_pw"/,
	'naming the server, with libpq\'s reason');
push @rnnlm_errors, $e;

my @leaks = grep { my $t = $_; grep { index($t, $_) >= 0 } $secret, $wrong, $dummy } @rnnlm_errors;
is(scalar(@leaks), 0, 'no rnnlm error message contains a password (' . scalar(@rnnlm_errors) . ' checked)')
  or diag($leaks[0]);

# alice's own mapping is hers: bob, with USAGE, has none
set_shape(usage => 1, mapping => 'alice', user => 'remote_pw', password => $secret);
$local->safe_psql('postgres', 'GRANT USAGE ON FOREIGN SERVER loop TO bob');
my ($rb) = probe('bob');
is(join(' ', @$rb{qw(dblink fdw train publish)}), '42704 42704 42704 42704',
	'bob is not served by alice\'s mapping (user mapping not found, 42704, everywhere)');
my ($ra) = probe('alice');
is(join(' ', @$ra{qw(dblink fdw train publish)}), 'ok ok ok ok', 'while alice is');

# a superuser connects as before: its own mapping, no password, over trust
$local->safe_psql('postgres', "CREATE USER MAPPING FOR CURRENT_USER SERVER loop OPTIONS (user 'postgres')");
is($local->safe_psql('postgres',
		"SELECT rnnlm_train_federated('su_fed', ARRAY['loop']::name[], 'SELECT line FROM lines', '$tiny') IS NOT NULL"),
	't', 'a superuser trains over a mapping without a password, as before');
is($local->safe_psql('postgres', q{SELECT rnnlm_publish('su_fed', 'loop')}), 't', 'and publishes');

done_testing();
