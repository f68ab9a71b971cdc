"""The certificate_current lookup, against certificates made here with cryptography.

Each case changes one thing the roles ask for (or one file) and expects the
answer to turn false, so a chain of community.crypto tasks is never skipped
when it would have made something different.
"""
import datetime
import ipaddress

import pytest
from ansible.errors import AnsibleLookupError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.pgha.cluster.plugins.lookup.certificate_current import certificate_is_current, key_and_ca_paths

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
SANS = ('DNS:pg1', 'DNS:localhost', 'IP:127.0.0.1', 'IP:10.213.7.11')


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path, key):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _write_cert(path, cert):
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_ca(directory, days=3650, common_name='lab CA'):
    key = _key()
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(directory / 'ca.key', key)
    _write_cert(directory / 'ca.crt', cert)
    return key, cert


def make_leaf(directory, ca, name='pg1', common_name='pg1', sans=SANS, ekus=(ExtendedKeyUsageOID.SERVER_AUTH,),
              days=825, key=None):
    ca_key, ca_cert = ca
    key = key or _key()
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=days)))
    general_names = []
    for san in sans:
        kind, value = san.split(':', 1)
        general_names.append(x509.DNSName(value) if kind == 'DNS' else x509.IPAddress(ipaddress.ip_address(value)))
    if general_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names), critical=False)
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    _write_key(directory / (name + '.key'), key)
    _write_cert(directory / (name + '.crt'), builder.sign(ca_key, hashes.SHA256()))
    return key


def check(directory, name='pg1', common_name='pg1', sans=SANS, ekus=('serverAuth',), days=30, **kwargs):
    return certificate_is_current(str(directory / (name + '.crt')), str(directory / (name + '.key')),
                                  str(directory / 'ca.crt'), common_name, sans, list(ekus), days, now=NOW, **kwargs)


@pytest.fixture
def pki(tmp_path):
    ca = make_ca(tmp_path)
    make_leaf(tmp_path, ca)
    return tmp_path, ca


def test_the_certificate_as_asked_for_is_current(pki):
    directory, unused = pki
    assert check(directory) == (True, '')


def test_order_and_spelling_of_the_names_do_not_matter(pki):
    directory, unused = pki
    assert check(directory, sans=['ip:10.213.7.11', 'DNS:LOCALHOST', 'IP:127.0.0.1', 'DNS:pg1'])[0]


@pytest.mark.parametrize('change', [
    {'sans': list(SANS[:-1]) + ['IP:10.213.7.12']},
    {'sans': list(SANS) + ['DNS:pg1.example']},
    {'common_name': 'pg2'},
    {'ekus': ('serverAuth', 'clientAuth')},
    {'ekus': ('clientAuth',)},
])
def test_a_different_request_is_not_current(pki, change):
    directory, unused = pki
    current, reason = check(directory, **change)
    assert not current and reason


def test_another_key_is_not_current(pki):
    directory, ca = pki
    _write_key(directory / 'pg1.key', _key())
    assert check(directory)[0] is False


def test_a_certificate_from_another_ca_with_the_same_name_is_not_current(pki):
    directory, unused = pki
    # a new CA under the same name: the issuer name still matches, the signature does not
    make_ca(directory)
    current, reason = check(directory)
    assert not current and 'signature' in reason


def test_an_expiring_certificate_or_ca_is_not_current(tmp_path):
    ca = make_ca(tmp_path)
    make_leaf(tmp_path, ca, days=10)
    assert check(tmp_path)[1] == 'the certificate expires within 30 days'
    assert check(tmp_path, days=5)[0] is True
    make_leaf(tmp_path, make_ca(tmp_path, days=20))
    assert check(tmp_path)[1] == 'the CA expires within 30 days'


@pytest.mark.parametrize('missing', ['pg1.crt', 'pg1.key', 'ca.crt'])
def test_a_missing_file_is_not_current(pki, missing):
    directory, unused = pki
    (directory / missing).unlink()
    assert check(directory)[0] is False


def test_a_file_that_is_not_pem_is_not_current(pki):
    directory, unused = pki
    (directory / 'pg1.crt').write_text('not a certificate\n')
    assert check(directory)[0] is False


def test_the_common_name_stands_in_for_missing_names_as_community_crypto_does(tmp_path):
    ca = make_ca(tmp_path)
    make_leaf(tmp_path, ca, name='client-replication', common_name='replicator', sans=['DNS:replicator'],
              ekus=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    assert check(tmp_path, name='client-replication', common_name='replicator', sans=[], ekus=['clientAuth'])[0]
    assert not check(tmp_path, name='client-replication', common_name='replicator', sans=[], ekus=['clientAuth'],
                     use_common_name_for_san=False)[0]


@pytest.mark.parametrize('bad', [{'sans': ['pg1']}, {'sans': ['IP:not-an-address']}, {'ekus': ['serverAuthh']}])
def test_bad_input_is_an_error(pki, bad):
    directory, unused = pki
    with pytest.raises(AnsibleLookupError):
        check(directory, **bad)


def test_the_key_and_the_ca_default_to_files_beside_the_certificate():
    assert key_and_ca_paths('/pki/etcd/pg1.crt') == ('/pki/etcd/pg1.key', '/pki/etcd/ca.crt')
    assert key_and_ca_paths('/pki/pg1.crt', '/keys/pg1.pem', '/cas/root.crt') == ('/keys/pg1.pem', '/cas/root.crt')
