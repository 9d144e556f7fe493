import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { SignIn } from "./SignIn";

const signInWithPassword = vi.fn();
const confirmStep = vi.fn();
vi.mock("../lib/auth", async (original) => ({
  ...(await original<typeof import("../lib/auth")>()),
  signInWithPassword: (...args: unknown[]) => signInWithPassword(...args),
  confirmStep: (...args: unknown[]) => confirmStep(...args),
}));

describe("SignIn", () => {
  it("signs in with the typed email and password", async () => {
    signInWithPassword.mockResolvedValueOnce({ kind: "done" });
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} />);
    await userEvent.type(screen.getByLabelText("Email"), "a@example.com");
    await userEvent.type(screen.getByLabelText("Password"), "secret-1");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(signInWithPassword).toHaveBeenCalledWith("a@example.com", "secret-1");
    expect(onSignedIn).toHaveBeenCalled();
  });

  it("shows why sign-in failed", async () => {
    const { SignInError } = await import("../lib/auth");
    signInWithPassword.mockRejectedValueOnce(new SignInError("Wrong email or password."));
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} />);
    await userEvent.type(screen.getByLabelText("Email"), "a@example.com");
    await userEvent.type(screen.getByLabelText("Password"), "nope");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Wrong email or password.");
    expect(onSignedIn).not.toHaveBeenCalled();
  });
});

async function signInAs(email: string, password: string): Promise<void> {
  await userEvent.type(screen.getByLabelText("Email"), email);
  await userEvent.type(screen.getByLabelText("Password"), password);
  await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
}

describe("SignIn's further steps", () => {
  it("asks for the authenticator code and sends it", async () => {
    signInWithPassword.mockResolvedValueOnce({ kind: "totp" });
    confirmStep.mockResolvedValueOnce({ kind: "done" });
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} />);
    await signInAs("a@example.com", "secret-1");
    await userEvent.type(await screen.findByLabelText("Code from your authenticator app"), "123456");
    await userEvent.click(screen.getByRole("button", { name: "Continue" }));
    expect(confirmStep).toHaveBeenCalledWith("123456", "a@example.com");
    expect(onSignedIn).toHaveBeenCalled();
  });

  it("shows the key to set up an authenticator app", async () => {
    signInWithPassword.mockResolvedValueOnce({
      kind: "totp-setup",
      secret: "JBSWY3DP",
      uri: "otpauth://totp/x",
    });
    render(<SignIn onSignedIn={vi.fn()} />);
    await signInAs("a@example.com", "secret-1");
    expect(await screen.findByRole("group", { name: "Set up an authenticator app" })).toHaveTextContent(
      "JBSWY3DP",
    );
    expect(screen.getByRole("link", { name: "Add to an authenticator app" })).toHaveAttribute(
      "href",
      "otpauth://totp/x",
    );
  });

  it("asks an administrator-created user for a new password", async () => {
    signInWithPassword.mockResolvedValueOnce({ kind: "new-password" });
    confirmStep.mockResolvedValueOnce({ kind: "done" });
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} />);
    await signInAs("a@example.com", "temporary-1");
    await userEvent.type(await screen.findByLabelText("New password"), "Mine-and-long-1!");
    await userEvent.click(screen.getByRole("button", { name: "Continue" }));
    expect(confirmStep).toHaveBeenCalledWith("Mine-and-long-1!", "a@example.com");
    expect(onSignedIn).toHaveBeenCalled();
  });
});
