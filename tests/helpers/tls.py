"""A throwaway certificate authority and server certificate made with the openssl CLI."""
import os
import pwd
import subprocess


def _openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, capture_output=True)


def make_ca(directory, name='test-ca'):
    """A self-signed CA in ``directory``; returns (certificate path, key path)."""
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, name + '.crt'), os.path.join(directory, name + '.key')
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=' + name,
             '-keyout', key, '-out', cert)
    os.chmod(cert, 0o644)
    return cert, key


def make_server_cert(directory, ca, owner=None, names=('IP:127.0.0.1', 'DNS:localhost')):
    """A server certificate for loopback signed by ``ca``; the key is 0600 and owned by ``owner``.

    Returns the postgresql.conf settings that turn TLS on with it.
    """
    ca_cert, ca_key = ca
    cert, key, csr = (os.path.join(directory, 'server.' + ext) for ext in ('crt', 'key', 'csr'))
    extensions = os.path.join(directory, 'server.ext')
    with open(extensions, 'w') as handle:
        handle.write('subjectAltName = %s\n' % ','.join(names))
    _openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', key, '-out', csr)
    _openssl('x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key, '-CAcreateserial', '-days', '2',
             '-extfile', extensions, '-out', cert)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o600)
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(key, entry.pw_uid, entry.pw_gid)
    os.chmod(directory, 0o755)
    return {'ssl': 'on', 'ssl_cert_file': "'%s'" % cert, 'ssl_key_file': "'%s'" % key}
