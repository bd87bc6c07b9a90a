use IO::Socket::UNIX; use JSON::PP; use File::Spec; use File::Basename;
# Reports to the sacred run this process is part of ($SACRED_SOCKET).
my $sacred = IO::Socket::UNIX->new(Peer => $ENV{SACRED_SOCKET}) or die "sacred: $!\n";
$sacred->autoflush(1);
my $sacred_json = JSON::PP->new->canonical;
sub sacred_send { print $sacred $sacred_json->encode({@_}), "\n" }
sub sacred_sync { sacred_send(kind => "sync"); scalar <$sacred> }  # returns once all sent is processed
sub sacred_metric { my ($name, $value, $step) = @_;
  sacred_send(kind => "metric", name => $name, value => $value + 0, defined $step ? (step => $step + 0) : ()) }
sub sacred_info { sacred_send(kind => "info", key => $_[0], value => $_[1]) }
sub sacred_result { sacred_send(kind => "result", value => $_[0]) }
sub sacred_artifact { my ($path, $name) = @_;  # copied before this returns
  sacred_send(kind => "artifact", path => File::Spec->rel2abs($path), name => $name // basename($path)); sacred_sync() }
sub sacred_resource { sacred_send(kind => "resource", path => File::Spec->rel2abs($_[0])) }
sub sacred_close { sacred_sync(); close $sacred }
