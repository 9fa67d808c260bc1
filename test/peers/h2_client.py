#!/usr/bin/python3
"""An independent HBONE client for the interop tests: python-h2 (Debian python3-h2) over TLS 1.3 with a client
certificate and ALPN h2, sending one HTTP/2 CONNECT and moving bytes through it.

python-h2 keeps its default settings (server push enabled, 64 KiB windows, 16 KiB frames, its own HPACK). One
thing is switched off: python-h2 4.1 validates every outgoing request as if it were a GET, insisting on :scheme
and :path, which RFC 9113 section 8.5 forbids on CONNECT; so outbound header validation is off and the request
carries exactly :method CONNECT and :authority (plus any --header).

After a 200 the client sends --send-bytes bytes (pseudo-random, --seed), honouring flow control, then ends its side
of the stream (END_STREAM: a half-close) and keeps reading until the server ends its side or resets the stream. It
prints one JSON object on stdout: what was negotiated, what was sent and received (sizes and SHA-256), how many
bytes arrived after our END_STREAM, and any reset or GOAWAY. Exit status 0 when the exchange completed (whatever
the status), 1 on a protocol or transport failure (the JSON says which), 2 on bad arguments.
"""
import argparse
import hashlib
import json
import random
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--connect', required=True, help='HOST:PORT of the HBONE server (15008)')
    p.add_argument('--authority', required=True, help='the CONNECT target, ip:port')
    p.add_argument('--cert', required=True)
    p.add_argument('--key', required=True)
    p.add_argument('--ca', required=True, help='the mesh root: the server certificate must chain to it')
    p.add_argument('--send-bytes', type=int, default=0)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--header', action='append', default=[], help='extra request header NAME=VALUE')
    p.add_argument('--timeout', type=float, default=30.0)
    return p.parse_args()


def sans_of(tls_sock):
    cert = tls_sock.getpeercert() or {}
    return [v for (k, v) in cert.get('subjectAltName', ()) if k == 'URI']


def settings_dict(settings):
    return {code.name: value for code, value in dict(settings).items()}


def main():
    args = parse_args()
    host, _, port = args.connect.rpartition(':')
    deadline = time.monotonic() + args.timeout
    result = {'ok': False}

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # workload certificates carry SPIFFE URIs, no host names: the test checks the URI SAN
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(['h2'])

    raw = socket.create_connection((host.strip('[]'), int(port)), timeout=args.timeout)
    sock = ctx.wrap_socket(raw, server_hostname=None)
    result['tls_version'] = sock.version()
    result['alpn'] = sock.selected_alpn_protocol()
    result['peer_sans'] = sans_of(sock)
    sock.setblocking(False)

    config = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False)
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    result['local_settings'] = settings_dict(conn.local_settings)

    rng = random.Random(args.seed)
    payload = rng.randbytes(args.send_bytes) if args.send_bytes > 0 else b''
    result['sent_bytes'] = len(payload)
    result['sent_sha256'] = hashlib.sha256(payload).hexdigest()

    stream_id = conn.get_next_available_stream_id()
    headers = [(b':method', b'CONNECT'), (b':authority', args.authority.encode('latin-1'))]
    for h in args.header:
        name, _, value = h.partition('=')
        headers.append((name.lower().encode('latin-1'), value.encode('latin-1')))
    conn.send_headers(stream_id, headers, end_stream=False)

    received = hashlib.sha256()
    state = {'status': None, 'received': 0, 'after_end': 0, 'sent': 0, 'ended_local': False, 'ended_remote': False,
             'reset': None, 'goaway': None, 'remote_settings_seen': False, 'data_frames': 0, 'max_data_frame': 0}
    out = bytearray(conn.data_to_send())

    def handle(events):
        for ev in events:
            if isinstance(ev, h2.events.ResponseReceived):
                hdrs = {k.decode('latin-1'): v.decode('latin-1') for k, v in ev.headers}
                state['status'] = int(hdrs.get(':status', '0'))
                result['response_headers'] = hdrs
            elif isinstance(ev, h2.events.DataReceived):
                n = len(ev.data)
                received.update(ev.data)
                state['received'] += n
                state['data_frames'] += 1
                state['max_data_frame'] = max(state['max_data_frame'], n)
                if state['ended_local']:
                    state['after_end'] += n
                if ev.flow_controlled_length:
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                state['ended_remote'] = True
            elif isinstance(ev, h2.events.StreamReset):
                state['reset'] = int(ev.error_code)
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                state['remote_settings_seen'] = True
                result['remote_settings'] = {k.name: v.new_value for k, v in ev.changed_settings.items()}
            elif isinstance(ev, h2.events.ConnectionTerminated):
                state['goaway'] = {'error_code': int(ev.error_code), 'last_stream_id': ev.last_stream_id,
                                   'debug': (ev.additional_data or b'').decode('latin-1')}

    def finished():
        if state['reset'] is not None or state['goaway'] is not None:
            return True
        if state['status'] is not None and state['status'] != 200:
            return state['ended_remote']
        return state['ended_remote'] and state['ended_local']

    try:
        while not finished():
            if time.monotonic() > deadline:
                raise TimeoutError('no end of the exchange within %.0f s' % args.timeout)
            # send what flow control allows, then END_STREAM once everything is out
            if state['status'] == 200 and not state['ended_local']:
                while state['sent'] < len(payload):
                    window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                    if window <= 0:
                        break
                    chunk = payload[state['sent']:state['sent'] + window]
                    conn.send_data(stream_id, chunk)
                    state['sent'] += len(chunk)
                    out += conn.data_to_send()
                    if len(out) > 1 << 20:
                        break
                if state['sent'] == len(payload):
                    conn.end_stream(stream_id)
                    state['ended_local'] = True
            out += conn.data_to_send()
            want_write = len(out) > 0
            r, w, _ = select.select([sock], [sock] if want_write else [], [], 0.2)
            if w and out:
                try:
                    n = sock.send(out)
                    del out[:n]
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    pass
            if r or sock.pending():
                while True:
                    try:
                        data = sock.recv(65536)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        break
                    if not data:
                        raise ConnectionError('the server closed the connection')
                    handle(conn.receive_data(data))
                    if not sock.pending():
                        break
        # flush what is left (WINDOW_UPDATEs, our GOAWAY is not sent: closing the socket is enough)
        out += conn.data_to_send()
        result['ok'] = True
    except (h2.exceptions.ProtocolError, ConnectionError, TimeoutError, ssl.SSLError, OSError) as err:
        result['error'] = '%s: %s' % (type(err).__name__, err)

    result.update({
        'status': state['status'], 'received_bytes': state['received'], 'received_sha256': received.hexdigest(),
        'received_after_end_stream': state['after_end'], 'ended_local': state['ended_local'],
        'ended_remote': state['ended_remote'], 'reset': state['reset'], 'goaway': state['goaway'],
        'data_frames': state['data_frames'], 'max_data_frame': state['max_data_frame'],
    })
    try:
        sock.close()
    except OSError:
        pass
    print(json.dumps(result))
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
