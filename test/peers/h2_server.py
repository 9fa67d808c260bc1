#!/usr/bin/python3
"""An independent HBONE server for the interop tests: python-h2 (Debian python3-h2) behind TLS 1.3 that requires a
client certificate from the mesh root, ALPN h2, presenting the certificate it is given (a pod's).

--mode echo answers CONNECT with 200 and sends every DATA byte back, ending its side once the client ended its
side and everything was echoed; --mode refuse answers --status with an x-strait-reason header and ends the stream.
Anything but CONNECT gets 405.

python-h2 keeps its default settings (64 KiB windows, 16 KiB frames, its own HPACK). One thing is switched off:
python-h2 4.1 validates every incoming request as if it were a GET, insisting on :scheme and :path, which RFC 9113
section 8.5 forbids on CONNECT; with its default it would reset every standard CONNECT (the script's --strict
keeps that default, to show it).

Events go to stdout as JSON lines: listening (with the port), connection (the client's URI SANs, ALPN, TLS
version), settings (the client's SETTINGS), request (headers), stream_closed (bytes echoed), terminated (a GOAWAY
from the client), error. It runs until killed.
"""
import argparse
import json
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions

_print_lock = threading.Lock()


def emit(**fields):
    with _print_lock:
        sys.stdout.write(json.dumps(fields) + '\n')
        sys.stdout.flush()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--listen', required=True, help='HOST:PORT (port 0: any free port)')
    p.add_argument('--cert', required=True, help='certificate chain to present (PEM)')
    p.add_argument('--key', required=True)
    p.add_argument('--ca', required=True, help='the mesh root: client certificates must chain to it')
    p.add_argument('--mode', choices=['echo', 'refuse'], default='echo')
    p.add_argument('--status', type=int, default=403)
    p.add_argument('--reason', default='refused by the python-h2 peer')
    p.add_argument('--strict', action='store_true', help="keep python-h2's inbound header validation")
    return p.parse_args()


class Session:
    """One TLS connection: python-h2's state machine fed from a blocking socket (one thread per connection)."""

    def __init__(self, args, sock, peer):
        self.args = args
        self.sock = sock
        self.peer = peer
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           validate_inbound_headers=args.strict)
        self.conn = h2.connection.H2Connection(config=config)
        self.pending = {}  # stream id -> bytearray to echo
        self.client_ended = set()
        self.echoed = {}

    def run(self):
        self.conn.initiate_connection()
        self.flush()
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError as err:
                emit(event='error', peer=self.peer, error='%s: %s' % (type(err).__name__, err))
                self.flush()
                return
            for ev in events:
                self.handle(ev)
            self.pump()
            self.flush()

    def handle(self, ev):
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            emit(event='settings', peer=self.peer, settings={k.name: v.new_value for k, v in ev.changed_settings.items()})
        elif isinstance(ev, h2.events.RequestReceived):
            headers = [[k.decode('latin-1'), v.decode('latin-1')] for k, v in ev.headers]
            emit(event='request', peer=self.peer, stream=ev.stream_id, headers=headers)
            method = dict(headers).get(':method')
            if method != 'CONNECT':
                self.conn.send_headers(ev.stream_id, [(b':status', b'405')], end_stream=True)
            elif self.args.mode == 'refuse':
                self.conn.send_headers(ev.stream_id, [(b':status', str(self.args.status).encode()),
                                                      (b'x-strait-reason', self.args.reason.encode('latin-1'))],
                                       end_stream=True)
            else:
                self.conn.send_headers(ev.stream_id, [(b':status', b'200')])
                self.pending[ev.stream_id] = bytearray()
                self.echoed[ev.stream_id] = 0
        elif isinstance(ev, h2.events.DataReceived):
            if ev.stream_id in self.pending:
                self.pending[ev.stream_id] += ev.data
            if ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.client_ended.add(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            self.pending.pop(ev.stream_id, None)
            emit(event='stream_reset', peer=self.peer, stream=ev.stream_id, code=int(ev.error_code))
        elif isinstance(ev, h2.events.ConnectionTerminated):
            emit(event='terminated', peer=self.peer, code=int(ev.error_code))

    def pump(self):
        """Echoes what flow control allows; ends a stream once its client ended and all was echoed."""
        for sid in list(self.pending):
            buf = self.pending[sid]
            while buf:
                try:
                    window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                except h2.exceptions.StreamClosedError:
                    buf.clear()
                    break
                if window <= 0:
                    break
                chunk = bytes(buf[:window])
                del buf[:window]
                self.conn.send_data(sid, chunk)
                self.echoed[sid] += len(chunk)
            if not buf and sid in self.client_ended:
                self.conn.end_stream(sid)
                del self.pending[sid]
                emit(event='stream_closed', peer=self.peer, stream=sid, echoed=self.echoed[sid])

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)


def serve(args, ctx, raw, addr):
    peer = '%s:%s' % addr[:2]
    try:
        sock = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as err:
        emit(event='error', peer=peer, error='TLS handshake failed: %s' % err)
        raw.close()
        return
    cert = sock.getpeercert() or {}
    emit(event='connection', peer=peer, tls_version=sock.version(), alpn=sock.selected_alpn_protocol(),
         peer_sans=[v for (k, v) in cert.get('subjectAltName', ()) if k == 'URI'])
    try:
        Session(args, sock, peer).run()
    except (OSError, ssl.SSLError) as err:
        emit(event='error', peer=peer, error='%s: %s' % (type(err).__name__, err))
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    args = parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(['h2'])
    host, _, port = args.listen.rpartition(':')
    srv = socket.socket(socket.AF_INET6 if ':' in host.strip('[]') else socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host.strip('[]'), int(port)))
    srv.listen(64)
    emit(event='listening', host=host, port=srv.getsockname()[1])
    while True:
        raw, addr = srv.accept()
        threading.Thread(target=serve, args=(args, ctx, raw, addr), daemon=True).start()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        pass
