/**
 * Who a gRPC caller is, with the Kubernetes source: the proxy's projected ServiceAccount token is reviewed
 * (TokenReview, audience checked, cached) and the proxy it claims to be (x-strait-node / x-strait-waypoint) is
 * checked against the pod and Gateway store at every call (refuseKubeCaller). The debug credential
 * (x-strait-debug) stays the controller's own bootstrap token.
 */
import type * as grpc from '@grpc/grpc-js';
import { StraitError } from '../../common/errors.js';
import { metadataValue } from '../../common/grpc.js';
import type { ConfigStore } from '../store.js';
import { BootstrapTokens, CredentialError, callerFromHeaders, callerSubject, type Caller } from '../tokens.js';
import { refuseKubeCaller, type CallerLookup, type KubeAuthzOptions } from './caller-authz.js';
import { MAX_KUBE_TOKEN_BYTES, type TokenReviewer } from './token-reviewer.js';

/** A valid token that may not act as the proxy it claims; `reason` is the metric label. */
export class CallerDenied extends StraitError {
  constructor(readonly reason: string, message: string) {
    super('STRAIT_ERR_IDENTITY_DENIED', message);
  }
}

export function storeLookup(store: ConfigStore): CallerLookup {
  return {
    pod: (ns, name) => {
      const o = store.get(`Pod/${ns}/${name}`)?.object;
      return o?.kind === 'Pod' ? o : undefined;
    },
    gateway: (ns, name) => {
      const o = store.get(`Gateway/${ns}/${name}`)?.object;
      return o?.kind === 'Gateway' ? o : undefined;
    },
  };
}

export class KubeAuthenticator {
  constructor(private readonly o: { reviewer: TokenReviewer; bootstrap: BootstrapTokens; lookup: CallerLookup; authz: KubeAuthzOptions }) {}

  async authenticate(md: grpc.Metadata): Promise<Caller> {
    const { caller, token } = callerFromHeaders((k) => metadataValue(md, k), MAX_KUBE_TOKEN_BYTES);
    if (caller.type === 'debug') {
      if (!this.o.bootstrap.verify(caller, token)) throw new CredentialError('wrong_token', 'the debug token is wrong: `strait token --debug --data-dir <the controller\'s data directory>` in the controller\'s pod prints it');
      return caller;
    }
    const user = await this.o.reviewer.review(token);
    const refusal = refuseKubeCaller(caller, user, this.o.lookup, this.o.authz);
    if (refusal) throw new CallerDenied(refusal.reason, `${callerSubject(caller)} refused: ${refusal.message}`);
    return caller;
  }
}
