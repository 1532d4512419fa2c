/** The vscode-free parts of the extension, bundled separately for the Node contract test. */

export * from "./chatcore";
export * from "./candidates";
export * from "./hunks";
export * from "./options";
export * from "./protocol";
export * from "./render";
export * from "./status";
export * from "./diagnostics";
export * from "./health";
