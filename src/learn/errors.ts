// Errors of the learning mode: one class per condition, each with a stable `code` and the context
// a user needs to fix the input (the file, the line or the field).

/** A saved model (state file or the admin's /learn/model answer) that cannot be read back. */
export class LearnStateError extends Error {
  readonly code = 'SIDEWALL_LEARN_STATE';
  constructor(readonly source: string, readonly field: string, detail: string) {
    super(field === '' ? `${source}: ${detail}` : `${source}: ${field}: ${detail}`);
    this.name = 'LearnStateError';
  }
}

/** A flow-record line given to `sidewall policy learn` that is not a flow record. */
export class FlowLineError extends Error {
  readonly code = 'SIDEWALL_LEARN_FLOW_LINE';
  constructor(readonly source: string, readonly line: number, detail: string) {
    super(`${source}:${line}: ${detail}`);
    this.name = 'FlowLineError';
  }
}

/** The running sidecar's admin port could not give its model. */
export class LearnFetchError extends Error {
  readonly code = 'SIDEWALL_LEARN_FETCH';
  constructor(readonly url: string, detail: string) {
    super(`${url}: ${detail}`);
    this.name = 'LearnFetchError';
  }
}
