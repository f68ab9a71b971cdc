# Copyright: pgha.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: certificate_current
author: pgha.cluster contributors (@pgha)
version_added: "0.3.0"
short_description: Whether a certificate the roles made on the controller still matches what they would make
description:
  - Reads a certificate, its private key and the certificate of the CA that signed it from the controller's
    file system and returns V(true) when all of them exist and the certificate still matches the request,
    the key is the certificate's, the CA signed it, its common name, subject alternative names and extended key
    usages are the ones asked for, and neither it nor the CA expires within O(renew_before_days).
  - The roles skip their chain of C(community.crypto) tasks (key, signing request, signature, for the CA and the
    certificate) when it returns V(true), and run the chain otherwise; a re-run then costs one lookup instead of
    seven tasks per certificate.
  - It never writes anything. A file that is missing or unreadable makes the answer V(false), not an error.
options:
  _terms:
    description: Paths of the certificates to check (PEM).
    type: list
    elements: path
    required: true
  key:
    description: Path of the private key (PEM, unencrypted); defaults to the certificate's path with C(.key) for C(.crt).
    type: path
  ca:
    description: Path of the CA certificate that must have signed it; defaults to C(ca.crt) beside the certificate.
    type: path
  common_name:
    description: The subject's common name asked for.
    type: str
    required: true
  subject_alt_names:
    description: The subject alternative names asked for, as C(DNS:name) or C(IP:address); order does not matter.
    type: list
    elements: str
    default: []
  extended_key_usage:
    description: The extended key usages asked for, by their short names (V(serverAuth), V(clientAuth)).
    type: list
    elements: str
    default: []
  use_common_name_for_san:
    description:
      - With no O(subject_alt_names), expect the common name as the only DNS name, as C(community.crypto.openssl_csr)
        and C(community.crypto.openssl_csr_pipe) put it there by default.
    type: bool
    default: true
  renew_before_days:
    description: The answer is V(false) when the certificate or the CA expires within this many days.
    type: int
    default: 30
'''

EXAMPLES = r'''
- name: Make this member's certificate unless the one on the controller is still right
  when: not query('pgha.cluster.certificate_current', pki_dir ~ '/' ~ inventory_hostname ~ '.crt',
                  common_name=inventory_hostname, subject_alt_names=sans, extended_key_usage=['serverAuth']) | first
  block:
    - name: Create the key, the signing request and the certificate
      ansible.builtin.debug:
        msg: the community.crypto chain goes here
'''

RETURN = r'''
_raw:
  description: One boolean per certificate.
  type: list
  elements: bool
'''

import datetime
import ipaddress
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - ansible-core itself depends on cryptography
    HAS_CRYPTOGRAPHY = False

display = Display()

EXTENDED_KEY_USAGES = {
    'serverAuth': 'SERVER_AUTH',
    'clientAuth': 'CLIENT_AUTH',
    'codeSigning': 'CODE_SIGNING',
    'emailProtection': 'EMAIL_PROTECTION',
    'timeStamping': 'TIME_STAMPING',
    'OCSPSigning': 'OCSP_SIGNING',
}


def _read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def _public_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _not_after(certificate):
    # not_valid_after_utc appeared in cryptography 42
    if hasattr(certificate, 'not_valid_after_utc'):
        return certificate.not_valid_after_utc
    return certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def normalize_san(name):
    """'DNS:Host' -> 'DNS:host', 'IP:::1' -> 'IP:::1' in canonical form; anything else as given."""
    kind, sep, value = name.partition(':')
    if not sep:
        raise AnsibleLookupError('subject alternative name %r is not TYPE:value' % name)
    kind = kind.strip().upper()
    value = value.strip()
    if kind == 'DNS':
        return 'DNS:' + value.lower()
    if kind == 'IP':
        try:
            return 'IP:' + str(ipaddress.ip_address(value))
        except ValueError:
            raise AnsibleLookupError('subject alternative name %r has no valid IP address' % name)
    return kind + ':' + value


def certificate_sans(certificate):
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    names = set('DNS:' + name.lower() for name in extension.value.get_values_for_type(x509.DNSName))
    names.update('IP:' + str(address) for address in extension.value.get_values_for_type(x509.IPAddress))
    # A kind this check does not know makes the sets differ, so the chain runs.
    others = [entry for entry in extension.value if not isinstance(entry, (x509.DNSName, x509.IPAddress))]
    names.update('OTHER:%r' % (entry,) for entry in others)
    return names


def certificate_ekus(certificate):
    try:
        extension = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return set()
    return set(oid.dotted_string for oid in extension.value)


def wanted_ekus(names):
    oids = set()
    for name in names:
        attribute = EXTENDED_KEY_USAGES.get(name)
        if attribute is None:
            raise AnsibleLookupError('unknown extended key usage %r; known: %s' % (name, ', '.join(sorted(EXTENDED_KEY_USAGES))))
        oids.add(getattr(ExtendedKeyUsageOID, attribute).dotted_string)
    return oids


def certificate_is_current(cert_path, key_path, ca_path, common_name, subject_alt_names, extended_key_usage,
                           renew_before_days, use_common_name_for_san=True, now=None):
    """(True, '') when the certificate matches the request, else (False, the first reason found)."""
    if not subject_alt_names and use_common_name_for_san:
        subject_alt_names = ['DNS:' + common_name]
    wanted_sans = set(normalize_san(name) for name in subject_alt_names)
    ekus = wanted_ekus(extended_key_usage)
    try:
        certificate = x509.load_pem_x509_certificate(_read(cert_path))
        ca = x509.load_pem_x509_certificate(_read(ca_path))
        key = serialization.load_pem_private_key(_read(key_path), password=None)
    except (OSError, ValueError, TypeError) as error:
        return False, 'cannot load the certificate, its key or the CA: %s' % error
    if _public_der(key.public_key()) != _public_der(certificate.public_key()):
        return False, 'the key is not the certificate\'s'
    if certificate.issuer != ca.subject:
        return False, 'the CA did not issue it'
    try:
        certificate.verify_directly_issued_by(ca)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError) as error:
        return False, 'the CA\'s signature does not verify: %s' % (error or type(error).__name__)
    names = [attribute.value for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [common_name]:
        return False, 'common name %s, asked for %s' % (names, common_name)
    if certificate_sans(certificate) != wanted_sans:
        return False, 'subject alternative names differ'
    if certificate_ekus(certificate) != ekus:
        return False, 'extended key usages differ'
    now = now or datetime.datetime.now(datetime.timezone.utc)
    limit = now + datetime.timedelta(days=renew_before_days)
    if _not_after(certificate) <= limit:
        return False, 'the certificate expires within %d days' % renew_before_days
    if _not_after(ca) <= limit:
        return False, 'the CA expires within %d days' % renew_before_days
    return True, ''


def key_and_ca_paths(cert_path, key_path=None, ca_path=None):
    """The key and CA paths given, else the certificate's name with .key and ca.crt beside it."""
    return (key_path or (os.path.splitext(cert_path)[0] + '.key'),
            ca_path or os.path.join(os.path.dirname(cert_path), 'ca.crt'))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        if not HAS_CRYPTOGRAPHY:
            raise AnsibleLookupError('certificate_current needs the Python library cryptography on the controller')
        self.set_options(var_options=variables, direct=kwargs)
        answers = []
        for cert_path in terms:
            key_path, ca_path = key_and_ca_paths(cert_path, self.get_option('key'), self.get_option('ca'))
            current, reason = certificate_is_current(
                cert_path, key_path, ca_path, self.get_option('common_name'),
                self.get_option('subject_alt_names'), self.get_option('extended_key_usage'),
                self.get_option('renew_before_days'), self.get_option('use_common_name_for_san'))
            if not current:
                display.vvv('certificate_current: %s is not current: %s' % (cert_path, reason))
            answers.append(current)
        return answers
