// Sidecar authentication: the sidecar sends its projected service-account token (audience
// `sidewall-controller` by default) and the controller asks the API server whether it is valid
// (authentication.k8s.io/v1 TokenReview). Answers are cached by the token's hash, so a fleet of
// sidecars reconnecting at once costs one review per token, not one per attempt.
import { createHash } from 'node:crypto';
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';

export type AuthResult = { ok: true; user: string } | { ok: false; reason: string };

export interface Authenticator {
  authenticate(token: string): Promise<AuthResult>;
}

export interface TokenReviewOptions {
  /** Audiences the token must be issued for; empty: the API server's own audience. */
  audiences?: string[];
  /** How long a positive answer is trusted (default 60 s); negative answers are kept 5 s. */
  ttlMs?: number;
  maxEntries?: number;
}

const SERVICE_ACCOUNT_PREFIX = 'system:serviceaccount:';

export class TokenReviewAuthenticator implements Authenticator {
  private readonly api: AuthenticationV1Api;
  private readonly cache: LRUCache<string, AuthResult>;
  private readonly pending = new Map<string, Promise<AuthResult>>();
  reviews = 0;

  constructor(kubeConfig: KubeConfig, private readonly options: TokenReviewOptions = {}) {
    this.api = kubeConfig.makeApiClient(AuthenticationV1Api);
    this.cache = new LRUCache<string, AuthResult>({ max: options.maxEntries ?? 10_000, ttl: options.ttlMs ?? 60_000 });
  }

  authenticate(token: string): Promise<AuthResult> {
    const key = createHash('sha256').update(token).digest('hex');
    const cached = this.cache.get(key);
    if (cached !== undefined) return Promise.resolve(cached);
    let review = this.pending.get(key);
    if (review === undefined) {
      review = this.review(token)
        .then((result) => {
          this.cache.set(key, result, result.ok ? {} : { ttl: 5000 });
          return result;
        })
        .finally(() => this.pending.delete(key));
      this.pending.set(key, review);
    }
    return review;
  }

  private async review(token: string): Promise<AuthResult> {
    this.reviews++;
    let status;
    try {
      const answer = await this.api.createTokenReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(this.options.audiences?.length ? { audiences: this.options.audiences } : {}) } },
      });
      status = answer.status;
    } catch (err) {
      // Not cached: this says nothing about the token, the API server did not answer.
      throw new TokenReviewUnavailableError((err as Error).message);
    }
    if (status?.authenticated !== true) return { ok: false, reason: status?.error ? `token rejected: ${status.error}` : 'token rejected by the TokenReview' };
    const user = status.user?.username ?? '';
    if (!user.startsWith(SERVICE_ACCOUNT_PREFIX)) return { ok: false, reason: `${user || 'the token'} is not a service account` };
    return { ok: true, user };
  }
}

export class TokenReviewUnavailableError extends Error {
  readonly code = 'SW_TOKENREVIEW_UNAVAILABLE';
  constructor(detail: string) {
    super(`cannot check the sidecar's token with a TokenReview (is the controller allowed to create tokenreviews?): ${detail}`);
    this.name = 'TokenReviewUnavailableError';
  }
}
